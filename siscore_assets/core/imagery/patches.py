"""Grid patches cut from granules, and the tile statuses every imagery source reports.

Patches of one country-year are cut into a uint8 stack (the `patches` asset stores it in the tile
store, ``core/storage/tile_store.py``) plus an index of every tile, including the ones that were
not usable and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from siscore_assets.core.imagery.granules import WORLD_HALF, tile_size_3857
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.storage.files import atomic_path

STATUS_OK = "ok"
STATUS_BLANK = "blank"
STATUS_CORRUPT = "corrupt"
STATUS_CLOUDY = "cloudy"
DEFAULT_MAX_CLOUD = 0.15  # cloud_fraction at which a tile is reported cloudy instead of scored
MAX_NODATA_SHARE = 0.5  # a tile with more no-data than this is reported blank (every source)


def cloud_fraction(tile: np.ndarray, min_level: int = 195, max_chroma: int = 20) -> float:
    """Share of near-white, colourless pixels: a cheap, explainable cloud proxy.

    Roofs and roads are bright too, but on the synthetic country even the densest town tiles stay
    under 10 % while clouded tiles reach 15-80 %; real imagery should use the scene's cloud mask
    when it has one.
    """
    r, g, b = tile[..., 0], tile[..., 1], tile[..., 2]  # per-channel views: a reduction over a
    lo = np.minimum(np.minimum(r, g), b)  # 3-wide axis is ~10x slower in numpy
    hi = np.maximum(np.maximum(r, g), b)
    return float(np.count_nonzero((lo >= min_level) & ((hi - lo) <= max_chroma)) / lo.size)


def tile_status(
    tile: np.ndarray, min_std: float = 1.0, max_cloud: float = DEFAULT_MAX_CLOUD
) -> tuple[str, str | None]:
    """('ok', None), ('blank', why) for tiles with no signal, or ('cloudy', why).

    Blank and cloudy tiles are reported, never scored: a cloud reads as a loss of development.
    """
    if float(tile.std()) < min_std:
        return STATUS_BLANK, "no signal (constant tile, e.g. nodata fill)"
    cloud = cloud_fraction(tile)
    if cloud >= max_cloud:
        return STATUS_CLOUDY, f"cloud cover {cloud:.2f} >= {max_cloud:.2f}"
    return STATUS_OK, None


def cut_patches(
    granule_paths: list[Path], z: int, *, max_cloud: float = DEFAULT_MAX_CLOUD
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every tile of every granule: an index frame and the stack of usable tiles.

    A granule that cannot be read, or whose grid does not fall on tile edges, is reported as
    'corrupt' rows; blank and cloudy tiles are reported with their reason.  None of them is in
    the stack.  Index rows carry ``image_row`` (row in the stack, or -1).
    """
    size = tile_size_3857(z)
    rows: list[dict] = []
    images: list[np.ndarray] = []
    for path in sorted(granule_paths):
        try:
            with rasterio.open(path) as src:
                if src.count < 3:
                    raise ValueError(f"{src.count} band(s), need RGB")
                left, bottom, right, top = src.bounds
                x0 = round((left + WORLD_HALF) / size)
                y0 = round((WORLD_HALF - top) / size)
                nx = round((right - left) / size)
                ny = round((top - bottom) / size)
                if nx < 1 or ny < 1 or src.width % nx or src.height % ny:
                    raise ValueError("granule edges do not fall on tile edges")
                data = np.moveaxis(src.read([1, 2, 3]), 0, 2)
        except Exception as exc:  # noqa: BLE001 - any unreadable granule is reported, not fatal
            rows.append(
                {
                    "granule_id": Path(path).stem,
                    "z": z,
                    "x": -1,
                    "y": -1,
                    "status": STATUS_CORRUPT,
                    "problem": f"{Path(path).name}: {exc}",
                    "image_row": -1,
                }
            )
            continue
        tpx = data.shape[0] // ny
        for j in range(ny):
            for i in range(nx):
                tile = data[j * tpx : (j + 1) * tpx, i * tpx : (i + 1) * tpx]
                status, problem = tile_status(tile, max_cloud=max_cloud)
                row = {
                    "granule_id": Path(path).stem,
                    "z": z,
                    "x": x0 + i,
                    "y": y0 + j,
                    "status": status,
                    "problem": problem,
                    "image_row": -1,
                }
                if status == STATUS_OK:
                    row["image_row"] = len(images)
                    images.append(tile)
                rows.append(row)
    index = pd.DataFrame(rows)
    good = index["x"] >= 0
    index.loc[good, "tile_id"] = [
        Tile(z, x, y).tile_id for x, y in zip(index.loc[good, "x"], index.loc[good, "y"])
    ]
    index = with_bounds(index)
    stack = np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
    return index, stack


def with_bounds(index: pd.DataFrame) -> pd.DataFrame:
    """Tile bounds as plain numbers (EPSG:3857 and lon/lat centre): no DuckDB extension needed.

    Left, right and the centre's longitude depend on a tile's column only, top, bottom and the
    centre's latitude on its row only: each is computed once per distinct column or row (with
    mercantile, as ``Tile`` does) and spread, so a 400,000-tile year makes no Tile per row."""
    out = index.copy()
    cols = {c: np.full(len(out), np.nan) for c in ("left", "bottom", "right", "top", "lon", "lat")}
    ok = (out["x"] >= 0).to_numpy()
    if ok.any():
        at = np.flatnonzero(ok)
        z, x, y = (out[c].to_numpy()[ok].astype(np.int64) for c in ("z", "x", "y"))
        for zoom in np.unique(z):
            here = z == zoom
            xs, xi = np.unique(x[here], return_inverse=True)
            ys, yi = np.unique(y[here], return_inverse=True)
            bx = np.array(
                [
                    Tile(int(zoom), int(v), 0).bounds_3857()
                    + (Tile(int(zoom), int(v), 0).center_lonlat()[0],)
                    for v in xs
                ]
            )
            by = np.array(
                [
                    Tile(int(zoom), 0, int(v)).bounds_3857()
                    + (Tile(int(zoom), 0, int(v)).center_lonlat()[1],)
                    for v in ys
                ]
            )
            rows = at[here]
            cols["left"][rows], cols["right"][rows], cols["lon"][rows] = (
                bx[xi, 0],
                bx[xi, 2],
                bx[xi, 4],
            )
            cols["bottom"][rows], cols["top"][rows], cols["lat"][rows] = (
                by[yi, 1],
                by[yi, 3],
                by[yi, 4],
            )
    for c, values in cols.items():
        out[c] = values
    return out


def problem_summary_of(counts: Mapping[str, int]) -> str:
    """Tiles not scored, by status ('cloudy 3, corrupt 1') from tile counts by status; '' when
    every tile is usable.  One line for a whole country-year: the rows are in `patches`."""
    return ", ".join(
        f"{status} {int(counts[status])}" for status in sorted(counts) if status != STATUS_OK
    )


# The same figures over an index that is written batch by batch (``query``: SQL over its rows,
# ``{spool}`` standing for them), so a 400,000-tile year is summed by DuckDB, not held as a frame.
PLACED_TILES_SQL = "SELECT x, y, image_row FROM {spool} WHERE image_row >= 0 ORDER BY image_row"


def status_counts(query: Callable[[str], pd.DataFrame]) -> dict[str, int]:
    """Tiles by status (every status present)."""
    frame = query("SELECT status, count(*) AS n FROM {spool} GROUP BY status")
    return {str(s): int(n) for s, n in zip(frame["status"], frame["n"])}


def duplicate_tile_count(query: Callable[[str], pd.DataFrame]) -> int:
    """How many tile ids of the rows behind ``query`` appear more than once (corrupt rows aside)."""
    return int(
        query("SELECT count(tile_id) - count(DISTINCT tile_id) AS n FROM {spool} WHERE x >= 0")[
            "n"
        ].iloc[0]
    )


def save_stack(stack: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, stack)
