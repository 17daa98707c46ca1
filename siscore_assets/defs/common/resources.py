"""Resources: where data lives, which countries exist, and the one door to the warehouse."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from siscore_assets.core.countries import CountryConfig, CountryRegistry, load_countries
from siscore_assets.core.storage import warehouse


class SiscoreSettings(ConfigurableResource):
    """Data root for files (imagery, models, rasters) and the countries file."""

    data_root: str = "data"
    countries_file: str | None = None
    device: str | None = None  # 'cuda' / 'cpu'; None picks CUDA when available

    def registry(self) -> CountryRegistry:
        return load_countries(self.countries_file)

    def country(self, code: str) -> CountryConfig:
        return self.registry().get(code)

    @property
    def root(self) -> Path:
        return Path(self.data_root)

    def country_dir(self, code: str) -> Path:
        return self.root / code


class Warehouse(DuckDBResource):
    """DuckDB warehouse; every write goes through ``replace_partition`` (core.warehouse)."""

    def write(self, table: str, frame: pd.DataFrame, keys: Mapping[str, Any]) -> int:
        with warehouse.connect(self.database) as conn:
            return warehouse.replace_partition(conn, table, frame, keys)

    def clear(self, table: str, keys: Mapping[str, Any]) -> int:
        """Replace a partition's rows with nothing (returns the rows removed)."""
        if not Path(self.database).exists():
            return 0
        with warehouse.connect(self.database) as conn:
            return warehouse.clear_partition(conn, table, keys)

    def union_view(self, view: str, tables: list[str], columns: list[str]) -> None:
        with warehouse.connect(self.database) as conn:
            warehouse.define_union_view(conn, view, tables, columns)

    def read(self, table: str, keys: Mapping[str, Any], order_by: str | None = None) -> pd.DataFrame:
        if not Path(self.database).exists():
            return pd.DataFrame()
        with warehouse.connect(self.database) as conn:
            return warehouse.read_partition(conn, table, keys, order_by)

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with warehouse.connect(self.database) as conn:
            return warehouse.read_frame(conn, sql, params)
