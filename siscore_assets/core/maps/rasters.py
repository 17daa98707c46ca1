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
import rasterio.windows
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds

from siscore_assets.core.analysis.change import flag_changes
from siscore_assets.core.analysis.regression import DEFAULT_EPS, delta_log
from siscore_assets.core.imagery.grid import Tile, block_bounds_3857
from siscore_assets.core.storage.files import atomic_path

#: A quicklook grows to a pixel per tile (nearest sampling drops tiles otherwise), up to this.
MAX_QUICKLOOK_PX = 6000
#: Largest internal tile of a grid COG (smaller grids get smaller tiles, see cog_blocksize).
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


def cog_blocksize(nx: int, ny: int) -> int:
    """Internal tile size for a grid raster: 256 for big grids, smaller (multiple of 16) for small
    ones so that even a 40 x 40 country gets several tiles and at least one overview level."""
    side = max(nx, ny)
    block = 16
    while block * 2 <= side // 2 and block < BLOCKSIZE:
        block *= 2
    return block


def write_grid_geotiff(
    df: pd.DataFrame,
    value_col: str,
    path: str | Path,
    *,
    nodata: float = np.nan,
    description: str | None = None,
    units: str = "",
    mask_col: str | None = None,
) -> Path:
    """Write one pixel per tile as a float32 Cloud-Optimised GeoTIFF in EPSG:3857.

    The transform comes from the exact outer tile bounds, so every pixel's edges are its tile's
    edges.  GDAL's COG driver writes it (internal tiles of :func:`cog_blocksize`, deflate with the
    float predictor, averaged overviews down to one block), through a temporary file so a failed
    write never replaces a good raster.  Tiles absent from ``df``, with a NaN value, or with a false
    ``mask_col`` (e.g. ``inhabited``) are nodata.  The zoom and block origin are stored as tags
    (``z``, ``x0``, ``y0``) so :func:`pixel_to_tile` needs nothing else.
    """
    path = Path(path)
    z = _zoom_of(df, None)
    if mask_col is not None:
        keep = df[mask_col].fillna(False).astype(bool).to_numpy()
        df = df.assign(
            **{value_col: np.where(keep, pd.to_numeric(df[value_col], errors="coerce"), np.nan)}
        )
    arr, (x0, y0, nx, ny) = grid_array(df, value_col, z)
    if not np.isnan(nodata):
        if np.any(arr[np.isfinite(arr)] == nodata):
            raise ValueError(f"nodata={nodata} collides with a real value of {value_col!r}")
        arr = np.where(np.isnan(arr), np.float32(nodata), arr).astype(np.float32)
    transform = from_bounds(*block_bounds_3857(z, x0, y0, nx, ny), nx, ny)
    profile = {
        "driver": "GTiff",
        "width": nx,
        "height": ny,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:3857",
        "transform": transform,
        "nodata": nodata,
    }
    tags = {
        "description": description or f"{value_col}, one pixel per zoom-{z} XYZ tile",
        "units": units,
        "value_col": value_col,
        "z": str(z),
        "x0": str(x0),
        "y0": str(y0),
    }
    if mask_col is not None:
        tags["nodata_where"] = f"no tile, no value, or {mask_col} is false"
    with MemoryFile() as mem, atomic_path(path) as tmp:
        with mem.open(**profile) as staging:
            _fill(staging, arr, tags, value_col, units)
        with mem.open() as src:
            rasterio.shutil.copy(
                src,
                tmp,
                driver="COG",
                blocksize=cog_blocksize(nx, ny),
                compress="DEFLATE",
                predictor="YES",
                overview_resampling="average",
            )
    return path


def validate_cog(path: str | Path) -> tuple[bool, list[str], list[str]]:
    """(is_valid, errors, warnings) from rio-cogeo's validator (the reference COG check)."""
    from rio_cogeo.cogeo import cog_validate

    return cog_validate(str(path), quiet=True)


def _fill(
    dst: rasterio.io.DatasetWriter, arr: np.ndarray, tags: dict, name: str, units: str
) -> None:
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
        z = (
            int(ztag)
            if ztag is not None
            else int(round(np.log2(_EARTH_CIRCUMFERENCE_3857 / abs(src.transform.a))))
        )
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
    mask_col: str | None = None,
    grey_col: str | None = None,
) -> Path:
    """A quick PNG of the grid with a colour bar, for Dagster metadata and eyeballing.

    Missing tiles are drawn in ``nan_color`` (pass ``(0, 0, 0, 0)`` for transparent).  The image
    is exactly ``figsize * dpi`` pixels, RGBA.  Tiles with a false ``mask_col`` are drawn as
    missing, as in the GeoTIFF; tiles with a false ``grey_col`` (a change within noise) in
    mid grey.  Uses the Agg canvas directly (no pyplot state).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mask_col is not None:
        df = df.assign(**{value_col: df[value_col].where(df[mask_col].fillna(False).astype(bool))})
    arr, (x0, y0, nx, ny) = grid_array(df, value_col)
    cm = colormaps[cmap].with_extremes(bad=nan_color)
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    box = ax.get_window_extent()
    grow = max(nx / box.width, ny / box.height)
    if grow > 1:  # at least a pixel per tile: sampling fewer pixels drops isolated tiles
        w, h = fig.get_size_inches()
        # x 1.3: the colour bar added below takes about a fifth of the axes' width
        scale = min(grow * 1.3, MAX_QUICKLOOK_PX / (max(w, h) * dpi))
        fig.set_size_inches(w * max(scale, 1.0), h * max(scale, 1.0))
    im = ax.imshow(
        np.ma.masked_invalid(arr),
        cmap=cm,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        extent=(x0 - 0.5, x0 + nx - 0.5, y0 + ny - 0.5, y0 - 0.5),
    )
    if grey_col is not None:
        within = df.assign(_w=(~df[grey_col].fillna(False).astype(bool)).astype(float))
        if mask_col is not None:
            within["_w"] = within["_w"].where(df[mask_col].fillna(False).astype(bool), 0.0)
        warr, _ = grid_array(within, "_w")
        grey = np.ma.masked_where(~(warr > 0.5), warr)
        ax.imshow(
            grey,
            cmap=colormaps["Greys"].with_extremes(bad=(0, 0, 0, 0)),
            vmin=0.0,
            vmax=2.0,
            interpolation="nearest",
            extent=(x0 - 0.5, x0 + nx - 0.5, y0 + ny - 0.5, y0 - 0.5),
        )
    ax.set_xlabel("tile x")
    ax.set_ylabel("tile y")
    ax.set_title(title if title is not None else value_col)
    fig.colorbar(im, ax=ax, label=value_col)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


#: Analysts see one `raster_files` view over these tables, each with exactly one writer: the
#: `siscore_raster` asset, the `siscore_change` asset and the CLI's `siscore change`.
RASTER_FILE_TABLES = ["siscore_raster_files", "change_raster_files", "adhoc_change_files"]
RASTER_FILE_COLUMNS = ["country", "year", "kind", "format", "path"]


def change_table(
    cur: pd.DataFrame, refs: dict[str, int | None], others: dict[str, pd.DataFrame]
) -> pd.DataFrame:
    """The `siscore_change` rows of one year: each tile's score beside, per label in ``refs``
    (``prev``, ``base``), the reference year, its score, the delta and the log ratio; NaN where
    that year is not in ``others`` (not materialised, or the year itself)."""
    base = cur[["country", "year", "tile_id", "z", "x", "y", "score"]].copy()
    for label, ref in refs.items():
        # typed even when empty: a first year's all-missing column must not retype the table
        base[f"{label}_year"] = pd.array([ref] * len(base), dtype="Int64")
        cols = {
            "score_prev": f"score_{label}",
            "delta": f"delta_{label}",
            "log_ratio": f"log_ratio_{label}",
            "delta_lo": f"delta_lo_{label}",
            "delta_hi": f"delta_hi_{label}",
            "significant": f"significant_{label}",
        }
        other = others.get(label)
        if other is None or other.empty:
            for col in cols.values():
                base[col] = np.nan
        else:
            ch = change_between(other, cur).rename(columns=cols)
            base = base.merge(ch[["z", "x", "y", *cols.values()]], on=["z", "x", "y"], how="left")
        flag = f"significant_{label}"
        base[flag] = base[flag].astype("boolean")  # a flag, missing where not compared
    return base


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
    :data:`siscore_assets.core.analysis.regression.DEFAULT_EPS`).

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


def change_between(
    earlier: pd.DataFrame, later: pd.DataFrame, *, eps: float = DEFAULT_EPS
) -> pd.DataFrame:
    """Per-tile change of ``score`` from one year's grid to another's (any two years).

    :func:`change_frame` of ``later`` vs ``earlier`` plus each year's verdict
    (``inhabited_prev`` / ``inhabited_cur``, when the grids have one) and ``inhabited_any``: a
    tile uninhabited in both years has no development to change (nodata in change rasters), one
    that became inhabited keeps its delta; and the delta's uncertainty
    (``analysis.change.flag_changes``): ``noise_sd``, ``delta_lo`` / ``delta_hi`` and
    ``significant``.
    """
    out = change_frame(later, earlier, key=("z", "x", "y"), col="score", eps=eps)
    if "inhabited" in earlier.columns and "inhabited" in later.columns:
        hab = earlier[["z", "x", "y", "inhabited"]].merge(
            later[["z", "x", "y", "inhabited"]], on=["z", "x", "y"], suffixes=("_prev", "_cur")
        )
        out = out.merge(hab, on=["z", "x", "y"], how="left")
        for c in ("inhabited_prev", "inhabited_cur"):
            out[c] = out[c].fillna(False).astype(bool)
        out["inhabited_any"] = out["inhabited_prev"] | out["inhabited_cur"]
    else:
        out["inhabited_any"] = True
    flags = flag_changes(out["delta"].to_numpy(), out["inhabited_any"].to_numpy())
    return pd.concat([out, flags.set_index(out.index)], axis=1)


def write_change_pair(
    earlier: pd.DataFrame,
    later: pd.DataFrame,
    year_from: int,
    year_to: int,
    folder: str | Path,
    *,
    label: str = "",
) -> tuple[Path, Path, pd.DataFrame]:
    """Change COG and quicklook for any two years: ``change_<from>_<to>.tif`` / ``.png``.

    The raster holds ``later - earlier`` per tile, nodata where a tile is missing in either year or
    uninhabited in both; the PNG draws changes within noise (not ``significant``) in grey.
    Returns (tif, png, change frame).
    """
    if year_from == year_to:
        raise ValueError(f"change needs two different years, got {year_from} twice")
    ch = change_between(earlier, later)
    if ch.empty:
        raise ValueError(f"no tile is scored in both {year_from} and {year_to}: nothing to compare")
    stem = Path(folder) / f"change_{year_from}_{year_to}"
    title = f"siScore change {year_from}→{year_to}" + (f" {label}" if label else "")
    tif = write_grid_geotiff(
        ch,
        "delta",
        stem.with_suffix(".tif"),
        description=title,
        units="siScore difference",
        mask_col="inhabited_any",
    )
    png = write_quicklook_png(
        ch,
        "delta",
        stem.with_suffix(".png"),
        title=title,
        vmin=-0.3,
        vmax=0.3,
        cmap="RdBu",
        mask_col="inhabited_any",
        grey_col="significant",
    )
    return tif, png, ch


def raster_matches_grid(
    path: str | Path, df: pd.DataFrame, value_col: str, mask_col: str | None = None
) -> dict[str, int]:
    """Check a grid raster against its table, pixel by pixel.

    Each pixel centre goes through the raster's transform to lon/lat and ``mercantile.tile``; the
    pixel must hold that tile's value (nodata where the tile is absent, NaN or masked).  Returns
    counts: ``pixels``, ``valued`` (pixels with data), ``mismatched``.
    """
    with rasterio.open(path) as src:
        data = src.read(1, masked=True)
        rows, cols = np.meshgrid(np.arange(src.height), np.arange(src.width), indexing="ij")
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel(), offset="center")
        z = int(src.tags()["z"])
    values = pd.to_numeric(df[value_col], errors="coerce").astype(float)
    if mask_col is not None:
        values = values.where(df[mask_col].fillna(False).astype(bool))
    expected = dict(zip(zip(df["x"].astype(int), df["y"].astype(int)), values.astype(np.float32)))
    mismatched = 0
    flat = data.ravel()
    for k, (xm, ym) in enumerate(zip(xs, ys)):
        t = mercantile.tile(*mercantile.lnglat(xm, ym), z)
        want = expected.get((t.x, t.y), np.float32(np.nan))
        got = flat[k]
        if np.isnan(want):
            mismatched += not np.ma.is_masked(got)
        else:
            mismatched += bool(np.ma.is_masked(got) or np.float32(got) != want)
    return {"pixels": int(flat.size), "valued": int(flat.count()), "mismatched": int(mismatched)}
