"""Running independent blocks of a partition's work: in this process (one thread or several),
or on Dask workers."""
