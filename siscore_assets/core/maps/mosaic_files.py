"""A country-year's full-resolution siScore overlays, written one granule at a time.

Each granule of the grid (or, for a tile folder, the scored tiles' extent) gets an overlay on
the XYZ grid (EPSG:3857); with granule patching, each granule's patches are also filled back
into one overlay in its own UTM CRS.  :func:`write_mosaics` returns the `mosaic_files` rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.stac import granule_patches as granule_patches_lib
from siscore_assets.core.maps import mosaic

#: Pixels per overlay (256 MB float32): keeps a tile-folder country's extent overlay cheap.
MOSAIC_MAX_PIXELS = 64_000_000
#: The side of the preview of the first overlay.
PREVIEW_SIDE = 512


@dataclass
class Mosaics:
    """The `mosaic_files` rows (one per overlay written) and a small preview of the first."""

    table: pd.DataFrame
    preview: np.ndarray | None

    @property
    def megapixels(self) -> float:
        return float((self.table["width_px"] * self.table["height_px"]).sum() / 1e6)


def fitting_px(tiles_x: int, tiles_y: int, tile_px: int) -> int:
    """``tile_px`` halved until the overlay has at most :data:`MOSAIC_MAX_PIXELS` pixels: a huge
    extent is drawn coarser rather than filling the disk."""
    while tiles_x * tiles_y * tile_px * tile_px > MOSAIC_MAX_PIXELS and tile_px > 1:
        tile_px //= 2
    return tile_px


def grid_granules(
    grid: pd.DataFrame, granules: pd.DataFrame, single_tiles: bool, tile_px: int
) -> pd.DataFrame:
    """The tile blocks to draw: the `granules` rows with their tile size, or (no granules, or a
    tile folder's single-tile 'granules') one block over the scored tiles' extent."""
    if not granules.empty and not single_tiles:
        granules = granules.copy()
        granules["tile_px"] = granules["width_px"] // granules["tiles_x"]
        return granules
    x0, y0 = int(grid["x"].min()), int(grid["y"].min())
    return pd.DataFrame(
        [
            {
                "granule_id": "extent",
                "tile_x0": x0,
                "tile_y0": y0,
                "tiles_x": int(grid["x"].max()) - x0 + 1,
                "tiles_y": int(grid["y"].max()) - y0 + 1,
                "tile_px": tile_px,
            }
        ]
    )


def _timed_fill(scores: np.ndarray, tile_px: int, backend: str) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    overlay = mosaic.fill(scores, tile_px, backend=backend)
    return overlay, time.perf_counter() - t0


def _row(overlay, scores, path, granule_id: str, tile_px: int, backend: str, fill_s, write_s):
    return {
        "granule_id": granule_id,
        "path": str(path),
        "width_px": overlay.shape[1],
        "height_px": overlay.shape[0],
        "tile_px": tile_px,
        "patches_scored": int(np.isfinite(scores).sum()),
        "backend": backend,
        "fill_ms": fill_s * 1e3,
        "write_ms": write_s * 1e3,
    }


def write_mosaics(
    grid: pd.DataFrame,
    blocks: pd.DataFrame,
    patch_scores: pd.DataFrame | None = None,
    patch_bounds: pd.DataFrame | None = None,
    *,
    zoom: int,
    folder: Path,
    backend: str,
    country: str,
    year: int,
) -> Mosaics:
    """Fill and write one XYZ overlay per block of ``blocks`` (:func:`grid_granules`) and, with
    granule patch scores (`granule_siscore` rows; ``patch_bounds``: their `granule_patches`
    rows), one UTM overlay per granule; returns the `mosaic_files` rows and the first overlay's
    preview."""
    rows, preview = [], None
    for g in blocks.itertuples(index=False):
        tp = fitting_px(g.tiles_x, g.tiles_y, int(g.tile_px))
        scores = mosaic.scores_block(
            grid, g.tile_x0, g.tile_y0, g.tiles_x, g.tiles_y, mask_col="inhabited"
        )
        overlay, fill_s = _timed_fill(scores, tp, backend)
        t1 = time.perf_counter()
        path = mosaic.write_overlay(
            overlay,
            zoom,
            g.tile_x0,
            g.tile_y0,
            g.tiles_x,
            g.tiles_y,
            folder / f"{g.granule_id}.tif",
            tags={"granule_id": g.granule_id},
        )
        write_s = time.perf_counter() - t1
        rows.append(_row(overlay, scores, path, g.granule_id, tp, backend, fill_s, write_s))
        rows[-1].update(grid="xyz", crs="EPSG:3857")
        if preview is None:
            preview = mosaic.preview(overlay, PREVIEW_SIDE)
    if patch_scores is not None and len(patch_scores):
        patches = patch_scores.merge(
            patch_bounds[["tile_id", "patch_px", "left", "bottom", "right", "top"]], on="tile_id"
        )
        rows += _granule_overlays(patches, folder, backend)
    table = pd.DataFrame(rows)
    table.insert(0, "year", year)
    table.insert(0, "country", country)
    return Mosaics(table, preview)


def _granule_overlays(patches: pd.DataFrame, folder: Path, backend: str) -> list[dict]:
    """The reproduction's granule patches, filled back in each granule's UTM zone."""
    rows = []
    for gid, g in patches.groupby("granule_id", sort=True):
        (left, bottom, right, top), nx, ny = granule_patches_lib.granule_extent(g)
        # every source pixel of the patch carries its score
        tp = fitting_px(nx, ny, int(g["patch_px"].iloc[0]))
        scores = mosaic.scores_block(
            g.rename(columns={"col": "x", "row": "y"}), 0, 0, nx, ny, mask_col="inhabited"
        )
        overlay, fill_s = _timed_fill(scores, tp, backend)
        t1 = time.perf_counter()
        crs = f"EPSG:{int(g['epsg'].iloc[0])}"
        path = mosaic.write_overlay_at(
            overlay,
            crs,
            (left, bottom, right, top),
            folder / f"granule_{gid}.tif",
            tags={
                "granule_id": str(gid),
                "patches_x": str(nx),
                "patches_y": str(ny),
                "patch_px": str(tp),
            },
        )
        write_s = time.perf_counter() - t1
        rows.append(_row(overlay, scores, path, str(gid), tp, backend, fill_s, write_s))
        rows[-1].update(grid="granule", crs=crs)
    return rows
