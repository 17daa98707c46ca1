"""Imported scores and proxies as first-class assets: every file stored by `siscore scores import`
/ `siscore proxies import` under `<data root>/<country>/imports/` is loaded into DuckDB."""


import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core import imports as imports_lib

from ..common import OWNERS, country_only, frame_md
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "ingest"
TABLES = {"scores": "imported_scores", "proxies": "imported_proxies"}


def _typed(frame: pd.DataFrame, code: str, value_col: str) -> pd.DataFrame:
    """Fixed column types, also for an empty frame (so the table exists with the right schema)."""
    out = pd.DataFrame({
        "country": pd.Series([code] * len(frame), dtype=object),
        "name": frame["name"].astype(object).to_numpy(),
        "year": pd.array(frame["year"], dtype="Int64"),
        "tile_id": frame["tile_id"].astype(object).to_numpy(),
        "z": frame["z"].astype("int64").to_numpy(),
        "x": frame["x"].astype("int64").to_numpy(),
        "y": frame["y"].astype("int64").to_numpy(),
        value_col: frame["value"].astype(float).to_numpy(),
        "source_line": frame["source_line"].astype("int64").to_numpy(),
    })
    return out


def _load(kind: str, context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
    country = country_only(context, settings)
    folder = imports_lib.imports_dir(settings.root, country.code, kind)
    tiles = warehouse.query("SELECT DISTINCT tile_id, z, x, y FROM patches WHERE country = ? AND x >= 0", [country.code]) \
        if any(s.format == "geotiff" for s in imports_lib.stored_specs(folder)) else pd.DataFrame(columns=["tile_id", "z", "x", "y"])
    frame, report = imports_lib.load_folder(folder, kind, zoom=country.zoom, years=country.years, tiles=tiles)
    value_col = imports_lib.KINDS[kind]
    table = _typed(frame, country.code, value_col)
    n = warehouse.write(TABLES[kind], table, {"country": country.code})
    files = pd.DataFrame(report, columns=["name", "format", "file", "rows", "years", "missing_years",
                                          "raster_outside", "raster_nodata"])
    files.insert(0, "kind", kind)
    files.insert(0, "country", country.code)
    warehouse.write("import_files", files, {"country": country.code, "kind": kind})
    return MaterializeResult(metadata={
        "rows": n, "imports": len(report), "folder": MetadataValue.path(str(folder)),
        "files": frame_md(files.drop(columns=["country", "kind", "file"])) if len(files) else MetadataValue.text("none"),
    })


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"duckdb", "csv"}, deps=["patches"],
        description="Every external score imported with `siscore scores import` (CSV keyed by `z/x/y` or "
        "`y_x` with `score` and optional `year`, or a GeoTIFF sampled at tile centres), one row per "
        "name-year-tile. Table `imported_scores`; per-file counts in `import_files`. Validation puts "
        "each name beside siScore.",
    )
    def imported_scores(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        return _load("scores", context, settings, warehouse)

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"duckdb", "csv"}, deps=["patches"],
        description="Every tile-level proxy imported with `siscore proxies import` (same formats, a "
        "`value` column). Table `imported_proxies`; validation uses each as one more proxy.",
    )
    def imported_proxies(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        return _load("proxies", context, settings, warehouse)

    return [imported_scores, imported_proxies]
