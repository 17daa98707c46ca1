"""Where results live: the warehouse (``warehouse.py``, the one door every table read and write
goes through: Parquet partitions renamed into place, an analysts' DuckDB catalog of views over
them), safe names under the data root (``paths.py``) and atomic file writes (``files.py``)."""
