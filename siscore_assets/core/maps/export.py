"""The grid as polygons for GIS users: one feature per tile, yearly scores and changes as columns.

QGIS reads GeoPackage natively, and GeoParquet (the same layer, WKB geometry + GeoParquet
metadata) is what DuckDB spatial, GeoPandas and cloud GIS read fastest; one wide layer
(``score_2016`` … ``change_2016_2017`` …) is what an analyst styles and filters without joins.
Polygons are the exact EPSG:3857 tile bounds.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.storage.files import atomic_path

LAYER = "siscore_grid"
#: ``siscore export --format`` -> file suffix.
FORMATS = {"gpkg": ".gpkg", "geoparquet": ".parquet"}


def change_pairs(years: list[int]) -> list[tuple[int, int]]:
    """Consecutive pairs, plus first → last when there are more than two years."""
    ys = sorted(set(years))
    pairs = list(zip(ys, ys[1:]))
    if len(ys) > 2:
        pairs.append((ys[0], ys[-1]))
    return pairs


def wide_grid(grid: pd.DataFrame) -> pd.DataFrame:
    """One row per tile from the long ``siscore_grid`` table (country, year, tile_id, z, x, y,
    score, inhabited …): ``score_<year>``, ``inhabited_<year>``,
    ``change_<a>_<b>`` = score_b − score_a (NULL where the tile is missing in either year)."""
    if grid.empty:
        raise ValueError("no siscore_grid rows to export")
    if grid.duplicated(["year", "tile_id"]).any():
        raise ValueError("duplicate (year, tile_id) rows in siscore_grid")
    years = sorted(int(y) for y in grid["year"].unique())
    tiles = grid[["tile_id", "z", "x", "y"]].drop_duplicates("tile_id")
    scores = grid.pivot(index="tile_id", columns="year", values="score")
    out = tiles.set_index("tile_id")
    for y in years:
        out[f"score_{y}"] = scores[y].astype(float)
    if "inhabited" in grid.columns:
        hab = grid.pivot(index="tile_id", columns="year", values="inhabited")
        for y in years:
            out[f"inhabited_{y}"] = hab[y].astype("boolean")
    for a, b in change_pairs(years):
        out[f"change_{a}_{b}"] = out[f"score_{b}"] - out[f"score_{a}"]
    return out.reset_index().sort_values(["y", "x"], kind="stable").reset_index(drop=True)


def grid_polygons(wide: pd.DataFrame) -> gpd.GeoDataFrame:
    """Tile polygons (exact EPSG:3857 bounds) carrying every column of ``wide``."""
    bounds = np.array(
        [
            Tile(int(z), int(x), int(y)).bounds_3857()
            for z, x, y in zip(wide["z"], wide["x"], wide["y"])
        ]
    )
    geom = shapely.box(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])
    return gpd.GeoDataFrame(wide.copy(), geometry=geom, crs="EPSG:3857")


def country_layer(grid: pd.DataFrame, country: str) -> gpd.GeoDataFrame:
    layer = grid_polygons(wide_grid(grid))
    layer.insert(0, "country", country)
    return layer


def write_gpkg(grid: pd.DataFrame, path: str | Path, country: str) -> tuple[Path, gpd.GeoDataFrame]:
    """Write the country's grid as a GeoPackage layer ``siscore_grid`` (atomically)."""
    layer = country_layer(grid, country)
    path = Path(path)
    with atomic_path(path) as tmp:
        layer.to_file(tmp, layer=LAYER, driver="GPKG", engine="pyogrio")
    return path, layer


def write_geoparquet(
    grid: pd.DataFrame, path: str | Path, country: str
) -> tuple[Path, gpd.GeoDataFrame]:
    """Write the same layer as GeoParquet (atomically; floats at full precision)."""
    layer = country_layer(grid, country)
    path = Path(path)
    with atomic_path(path) as tmp:
        layer.to_parquet(tmp, index=False)
    return path, layer


def write_layer(
    grid: pd.DataFrame, path: str | Path, country: str, fmt: str
) -> tuple[Path, gpd.GeoDataFrame]:
    """``fmt`` one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; supported: {', '.join(FORMATS)}")
    return (write_gpkg if fmt == "gpkg" else write_geoparquet)(grid, path, country)
