"""Imported scores and proxies as first-class assets: every file stored by `siscore scores import`
/ `siscore proxies import` under `<data root>/<country>/imports/` is loaded into DuckDB."""

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from siscore_assets.core.analysis import imported as imported_lib

from ..common.context import OWNERS, country_only
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "ingest"
TABLES = {"scores": "imported_scores", "proxies": "imported_proxies"}
FILE_COLUMNS = [
    "name",
    "format",
    "file",
    "rows",
    "years",
    "missing_years",
    "raster_outside",
    "raster_nodata",
]


def build(p: Partitions) -> list:
    tiles = p.from_years("patches")  # a GeoTIFF import is sampled at the country's tiles

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        specs=[
            AssetSpec(
                "imported_scores",
                deps=[tiles],
                owners=OWNERS,
                kinds={"duckdb", "csv"},
                description="Every external score imported with `siscore scores import` (CSV "
                "keyed by `z/x/y` or `y_x` with `score` and optional `year`, or a GeoTIFF sampled "
                "at tile centres), one row per name-year-tile. Validation puts each name beside "
                "siScore.",
            ),
            AssetSpec(
                "imported_proxies",
                deps=[tiles],
                owners=OWNERS,
                kinds={"duckdb", "csv"},
                description="Every tile-level proxy imported with `siscore proxies import` (same "
                "formats, a `value` column); validation uses each as one more proxy.",
            ),
            AssetSpec(
                "import_files",
                deps=[tiles],
                owners=OWNERS,
                kinds={"duckdb"},
                description="One row per stored import file (kind scores / proxies): rows, years "
                "covered and missing, raster pixels outside the grid or nodata.",
            ),
        ],
    )
    def imports(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse):
        country = country_only(context, settings)
        keys = {"country": country.code}
        reports = []
        for kind, table in TABLES.items():
            folder = imported_lib.imports_dir(settings.root, country.code, kind)
            tiles_frame = (
                warehouse.query(
                    "SELECT DISTINCT tile_id, z, x, y FROM patches WHERE country = ? AND x >= 0",
                    [country.code],
                )
                if imported_lib.needs_tiles(folder)
                else pd.DataFrame(columns=["tile_id", "z", "x", "y"])
            )
            frame, report = imported_lib.load_folder(
                folder, kind, zoom=country.zoom, years=country.years, tiles=tiles_frame
            )
            n = warehouse.write(table, imported_lib.typed_table(frame, country.code, kind), keys)
            files = pd.DataFrame(report, columns=FILE_COLUMNS)
            files.insert(0, "kind", kind)
            reports.append(files)
            yield MaterializeResult(
                asset_key=table,
                metadata={
                    "rows": n,
                    "status": "ok",
                    "imports": len(report),
                    "folder": MetadataValue.path(str(folder)),
                    "files": frame_md(files.drop(columns=["kind", "file"]))
                    if len(files)
                    else MetadataValue.text("none"),
                },
            )
        files = pd.concat(reports, ignore_index=True)
        files.insert(0, "country", country.code)
        n = warehouse.write("import_files", files, keys)
        yield MaterializeResult(asset_key="import_files", metadata={"rows": n, "status": "ok"})

    return [imports]
