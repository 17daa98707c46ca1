"""Resources: where data lives, which countries exist, and the one door to the warehouse."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from dagster import ConfigurableResource, InitResourceContext
from dagster_duckdb import DuckDBResource

from siscore_assets.core.compute.blocks import WorkerConfig, pin_threads, step_threads
from siscore_assets.core.countries import CountryConfig, CountryRegistry, load_countries
from siscore_assets.core.storage import warehouse
from siscore_assets.core.storage.paths import safe_join


class SiscoreSettings(ConfigurableResource):
    """Data root for files (imagery, models, rasters) and the countries file."""

    data_root: str = "data"
    countries_file: str | None = None
    device: str | None = None  # 'cuda' / 'cpu'; None picks CUDA when available
    #: Workers for block-level work (patches, habitation, siscore_grid): local workers
    #: (0: one per core for a large partition; 1: the run's own thread), or a scheduler address to
    #: run on a cluster instead.  None: $SISCORE_WORKERS / $SISCORE_DASK_SCHEDULER
    #: (core/compute/blocks.py).
    workers: int | None = None
    dask_scheduler: str | None = None
    #: Local workers as processes (True) or as threads of the run's process (False, the default:
    #: no extra memory); None: $SISCORE_WORKER_PROCESSES.
    worker_processes: bool | None = None
    #: torch / BLAS threads of every step that uses these settings (every asset), set when the
    #: step's resources are built: training gives the same weights on any core count.  None:
    #: $SISCORE_STEP_THREADS, else 2 (core/compute/blocks.py).  Block tasks keep their own.
    step_threads: int | None = None

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Pin the process's threads for the step.  Not restored after: a teardown would make
        this a context-managed resource, which sensors cannot use outside a ``with`` block, and
        a step's process (the multiprocess executor's) ends with its step."""
        pin_threads(step_threads(self.step_threads))

    def worker_config(self) -> WorkerConfig:
        return WorkerConfig.from_env(self.workers, self.dask_scheduler, self.worker_processes)

    def registry(self) -> CountryRegistry:
        return load_countries(self.countries_file)

    def country(self, code: str) -> CountryConfig:
        return self.registry().get(code)

    @property
    def root(self) -> Path:
        return Path(self.data_root)

    def country_dir(self, code: str) -> Path:
        """``<data root>/<code>``; a code that is not a plain name is refused (paths.py)."""
        return safe_join(self.root, code, what="country code")


class Warehouse(DuckDBResource):
    """The warehouse (``database`` = the analysts' catalog file; the tables are Parquet files
    beside it).  Every read and write goes through ``core.storage.warehouse``; none of them
    opens the catalog file, so an analyst holding it open never blocks a run."""

    def write(self, table: str, frame: pd.DataFrame, keys: Mapping[str, Any]) -> int:
        return warehouse.write(self.database, table, frame, keys)

    def spool(
        self, table: str, keys: Mapping[str, Any]
    ) -> AbstractContextManager[warehouse.PartitionSpool]:
        """A partition written batch by batch (``append``, ``query``, ``commit``): its rows never
        in memory at once."""
        return warehouse.spool(self.database, table, keys)

    def clear(self, table: str, keys: Mapping[str, Any]) -> int:
        """Replace a partition's rows with nothing (returns the rows removed)."""
        return warehouse.clear(self.database, table, keys)

    def union_view(self, view: str, tables: list[str], columns: list[str]) -> None:
        warehouse.union_view(self.database, view, tables, columns)

    def read(
        self, table: str, keys: Mapping[str, Any], order_by: str | None = None, columns: str = "*"
    ) -> pd.DataFrame:
        return warehouse.read(self.database, table, keys, order_by, columns)

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return warehouse.query(self.database, sql, params)

    def reader(self, tables: list[str]) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-only DuckDB connection over ``tables``, for reads streamed in batches."""
        return warehouse.reader(self.database, tables)
