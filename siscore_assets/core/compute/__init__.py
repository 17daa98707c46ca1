"""Running independent blocks of a partition's work: in this process, or on Dask workers."""
