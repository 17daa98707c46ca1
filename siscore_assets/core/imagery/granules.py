"""Granules: north-up EPSG:3857 GeoTIFF scenes whose edges fall on zoom-z tile edges.

The synthetic country renders its scenes here; ``patches.cut_patches`` cuts them into grid tiles.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_bounds

from siscore_assets.core.imagery.grid import block_bounds_3857
from siscore_assets.core.storage.files import atomic_path

WORLD_HALF = 20037508.342789244


def tile_size_3857(z: int) -> float:
    return 2 * WORLD_HALF / (1 << z)


@dataclass(frozen=True)
class GranuleInfo:
    granule_id: str
    path: Path
    x0: int
    y0: int
    nx: int
    ny: int
    width_px: int
    height_px: int


def write_granule(
    image: np.ndarray, z: int, x0: int, y0: int, nx: int, ny: int, path: Path
) -> GranuleInfo:
    """Write an RGB scene covering tiles [x0, x0+nx) x [y0, y0+ny) as a tiled GeoTIFF."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 scene, got {image.shape} {image.dtype}")
    h, w, _ = image.shape
    if h % ny or w % nx:
        raise ValueError(f"scene {w}x{h} px does not divide into {nx}x{ny} tiles")
    transform = from_bounds(*block_bounds_3857(z, x0, y0, nx, ny), width=w, height=h)
    block = 256 if min(h, w) >= 256 else None
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:3857",
        "transform": transform,
        "compress": "deflate",
        "photometric": "RGB",
        "interleave": "pixel",
    }
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.moveaxis(image, 2, 0))
        dst.update_tags(
            zoom=str(z), tile_x0=str(x0), tile_y0=str(y0), tiles_x=str(nx), tiles_y=str(ny)
        )
    return GranuleInfo(path.stem, path, x0, y0, nx, ny, w, h)


def split_scene(
    scene: np.ndarray,
    z: int,
    x0: int,
    y0: int,
    nx: int,
    ny: int,
    tile_px: int,
    granule_tiles: int,
    out_dir: Path,
) -> list[GranuleInfo]:
    """Cut a country-wide scene into granules of granule_tiles x granule_tiles tiles."""
    out: list[GranuleInfo] = []
    for gy in range(0, ny, granule_tiles):
        for gx in range(0, nx, granule_tiles):
            gnx, gny = min(granule_tiles, nx - gx), min(granule_tiles, ny - gy)
            sub = scene[gy * tile_px : (gy + gny) * tile_px, gx * tile_px : (gx + gnx) * tile_px]
            gid = f"g_{x0 + gx}_{y0 + gy}"
            out.append(
                write_granule(
                    np.ascontiguousarray(sub), z, x0 + gx, y0 + gy, gnx, gny, out_dir / f"{gid}.tif"
                )
            )
    return out


def replace_granules(
    out_dir: Path, write: Callable[[Path], list[GranuleInfo]]
) -> list[GranuleInfo]:
    """``write(folder)`` into a hidden staging folder beside ``out_dir``'s granules, then move
    the finished files into ``out_dir`` (renames): a failed render leaves the earlier granules
    as they were.  Returns the infos with their final paths; the files of an earlier
    configuration stay until :func:`remove_stale_granules` (after the table names the new set),
    so the partition is never without the files its table lists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        infos = write(staging)
        moved = []
        for g in infos:
            final = out_dir / g.path.name
            os.replace(g.path, final)
            moved.append(replace(g, path=final))
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_granules(out_dir: Path, keep: Iterable[Path]) -> list[Path]:
    """Delete the ``.tif`` files of ``out_dir`` that are not in ``keep`` (an earlier
    configuration's granules: another grid, another granule size); returns them."""
    kept = {Path(q).name for q in keep}
    stale = sorted(q for q in out_dir.glob("*.tif") if q.name not in kept)
    for q in stale:
        q.unlink(missing_ok=True)
    return stale


def listed_granules(out_dir: Path, listed: Iterable[str]) -> list[Path]:
    """The files of the granules a partition's `granules` rows list (``path``), found by name in
    the partition's folder ``out_dir`` (a moved data root still finds them), sorted; a listed
    file that is gone is an error, never skipped."""
    paths = sorted(out_dir / Path(str(q)).name for q in listed)
    gone = [str(q) for q in paths if not q.is_file()]
    if gone:
        raise FileNotFoundError(
            f"granule file(s) listed in `granules` are missing: {', '.join(gone[:5])}"
            f"{' ...' if len(gone) > 5 else ''}; materialise 'granules' again"
        )
    return paths


def granule_table(infos: list[GranuleInfo], country: str, year: int) -> pd.DataFrame:
    """The `granules` table rows of one country-year."""
    return pd.DataFrame(
        [
            {
                "country": country,
                "year": year,
                "granule_id": g.granule_id,
                "path": str(g.path),
                "tile_x0": g.x0,
                "tile_y0": g.y0,
                "tiles_x": g.nx,
                "tiles_y": g.ny,
                "width_px": g.width_px,
                "height_px": g.height_px,
            }
            for g in infos
        ]
    )
