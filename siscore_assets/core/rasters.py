"""Tile tables as rasters: one pixel per zoom-14 XYZ tile, EPSG:3857, exact tile bounds.

A GeoTIFF whose pixels *are* the grid tiles lets a GIS user overlay siScore on anything else,
and lets us go back from any pixel to its tile id (:func:`pixel_to_tile`).  Change maps
(:func:`change_frame`) compare the same tile id across years, which is the same place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mercantile
import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds

from siscore_assets.core.grid import Tile, block_bounds_3857
from siscore_assets.core.regression import DEFAULT_EPS, delta_log

#: Block size for tiled GeoTIFFs; rasters smaller than this in either direction stay untiled.
BLOCKSIZE = 256
_EARTH_CIRCUMFERENCE_3857 = 2 * np.pi * 6378137.0


def _zoom_of(df: pd.DataFrame, z: int | None) -> int:
    if len(df) == 0:
        raise ValueError("empty tile table: nothing to grid")
    zs = pd.unique(df["z"])
    if z is None:
        if len(zs) != 1:
            raise ValueError(f"tiles have mixed zooms {sorted(zs.tolist())}; pass z=")
        return int(zs[0])
    if not (len(zs) == 1 and int(zs[0]) == z):
        raise ValueError(f"tiles are at zoom(s) {sorted(zs.tolist())}, not {z}")
    return int(z)


def grid_array(
    df: pd.DataFrame, value_col: str, z: int | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Place ``value_col`` on the tiles' bounding block.

    Returns a float32 array (rows = y from the top, cols = x), NaN where there is no tile or
    no value, and the block ``(x0, y0, nx, ny)``.  Duplicate tiles are an error: silently
    keeping one of them would hide a join bug upstream.
    """
    _zoom_of(df, z)
    x = df["x"].to_numpy(dtype=np.int64)
    y = df["y"].to_numpy(dtype=np.int64)
    if pd.DataFrame({"x": x, "y": y}).duplicated().any():
        raise ValueError("duplicate (x, y) tiles in table")
    x0, y0 = int(x.min()), int(y.min())
    nx, ny = int(x.max()) - x0 + 1, int(y.max()) - y0 + 1
    arr = np.full((ny, nx), np.nan, dtype=np.float32)
    arr[y - y0, x - x0] = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=np.float32)
    return arr, (x0, y0, nx, ny)


def write_grid_geotiff(
    df: pd.DataFrame,
    value_col: str,
    path: str | Path,
    *,
    nodata: float = np.nan,
    description: str | None = None,
    units: str = "",
) -> Path:
    """Write one pixel per tile to a float32, deflate-compressed GeoTIFF in EPSG:3857.

    The transform comes from the exact outer tile bounds, so every pixel's edges are its tile's
    edges.  Rasters at least ``BLOCKSIZE`` on both sides are written with GDAL's COG driver
    (256 blocks, overviews); smaller ones as a plain untiled GeoTIFF, which is already
    cloud-friendly at that size.  The zoom and block origin are stored as tags (``z``, ``x0``,
    ``y0``) so :func:`pixel_to_tile` needs nothing else.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    z = _zoom_of(df, None)
    arr, (x0, y0, nx, ny) = grid_array(df, value_col, z)
    if not np.isnan(nodata):
        if np.any(arr[np.isfinite(arr)] == nodata):
            raise ValueError(f"nodata={nodata} collides with a real value of {value_col!r}")
        arr = np.where(np.isnan(arr), np.float32(nodata), arr).astype(np.float32)
    transform = from_bounds(*block_bounds_3857(z, x0, y0, nx, ny), nx, ny)
    profile = {
        "driver": "GTiff", "width": nx, "height": ny, "count": 1, "dtype": "float32",
        "crs": "EPSG:3857", "transform": transform, "nodata": nodata,
    }
    tags = {
        "description": description or f"{value_col}, one pixel per zoom-{z} XYZ tile",
        "units": units, "value_col": value_col, "z": str(z), "x0": str(x0), "y0": str(y0),
    }
    big = nx >= BLOCKSIZE and ny >= BLOCKSIZE
    if not big:
        with rasterio.open(path, "w", compress="deflate", predictor=3, tiled=False,
                           **profile) as dst:
            _fill(dst, arr, tags, value_col, units)
        return path
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            _fill(tmp, arr, tags, value_col, units)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", blocksize=BLOCKSIZE, compress="DEFLATE",
                                 predictor="YES", overview_resampling="average")
    return path


def _fill(dst: rasterio.io.DatasetWriter, arr: np.ndarray, tags: dict, name: str, units: str) -> None:
    dst.write(arr, 1)
    dst.update_tags(**tags)
    dst.set_band_description(1, name)
    if units:
        dst.set_band_unit(1, units)


def pixel_to_tile(path: str | Path, row: int, col: int) -> Tile:
    """The grid tile under pixel (row, col) of a raster written by :func:`write_grid_geotiff`.

    Goes pixel centre -> EPSG:3857 -> lon/lat -> ``mercantile.tile``; the zoom is the ``z`` tag,
    or, failing that, the zoom whose tile size equals the pixel size.
    """
    with rasterio.open(path) as src:
        if not (0 <= row < src.height and 0 <= col < src.width):
            raise IndexError(f"pixel ({row}, {col}) outside {src.height}x{src.width} raster")
        xm, ym = src.xy(row, col, offset="center")
        ztag = src.tags().get("z")
        z = int(ztag) if ztag is not None else int(
            round(np.log2(_EARTH_CIRCUMFERENCE_3857 / abs(src.transform.a))))
    lon, lat = mercantile.lnglat(xm, ym)
    t = mercantile.tile(lon, lat, z)
    return Tile(t.z, t.x, t.y)


def write_quicklook_png(
    df: pd.DataFrame,
    value_col: str,
    path: str | Path,
    *,
    vmin: float = 0,
    vmax: float = 1,
    cmap: str = "viridis",
    title: str | None = None,
    nan_color: str | tuple = "lightgrey",
    figsize: tuple[float, float] = (6.0, 5.0),
    dpi: int = 100,
) -> Path:
    """A quick PNG of the grid with a colour bar, for Dagster metadata and eyeballing.

    Missing tiles are drawn in ``nan_color`` (pass ``(0, 0, 0, 0)`` for transparent).  The image
    is exactly ``figsize * dpi`` pixels.  Uses the Agg canvas directly (no pyplot state).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr, (x0, y0, nx, ny) = grid_array(df, value_col)
    cm = colormaps[cmap].with_extremes(bad=nan_color)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(arr), cmap=cm, vmin=vmin, vmax=vmax,
                   interpolation="nearest",
                   extent=(x0 - 0.5, x0 + nx - 0.5, y0 + ny - 0.5, y0 - 0.5))
    ax.set_xlabel("tile x")
    ax.set_ylabel("tile y")
    ax.set_title(title if title is not None else value_col)
    fig.colorbar(im, ax=ax, label=value_col)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def change_frame(
    cur: pd.DataFrame,
    prev: pd.DataFrame,
    key: Sequence[str] = ("z", "x", "y"),
    col: str = "score",
    *,
    eps: float = DEFAULT_EPS,
) -> pd.DataFrame:
    """Per-tile change between two years: ``delta = cur - prev`` and
    ``log_ratio = log((cur + eps) / (prev + eps))`` (eps default 0.01, see
    :data:`siscore_assets.core.regression.DEFAULT_EPS`).

    Only tiles present in both frames are kept (inner join on ``key``); how many were only in
    one year is in ``attrs['n_only_cur']`` / ``attrs['n_only_prev']``.
    """
    key = list(key)
    for name, d in (("cur", cur), ("prev", prev)):
        if d.duplicated(key).any():
            raise ValueError(f"duplicate keys {key} in {name}")
    c = cur[key + [col]].rename(columns={col: f"{col}_cur"})
    p = prev[key + [col]].rename(columns={col: f"{col}_prev"})
    out = c.merge(p, on=key, how="outer", indicator=True)
    n_only_cur = int((out["_merge"] == "left_only").sum())
    n_only_prev = int((out["_merge"] == "right_only").sum())
    out = out[out["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    if "tile_id" in cur.columns and "tile_id" not in key:
        out = out.merge(cur[key + ["tile_id"]], on=key, how="left")
    a = out[f"{col}_cur"].to_numpy(dtype=float)
    b = out[f"{col}_prev"].to_numpy(dtype=float)
    out["delta"] = a - b
    out["log_ratio"] = delta_log(a, b, eps)
    out.attrs.update(n_only_cur=n_only_cur, n_only_prev=n_only_prev, eps=eps)
    return out
