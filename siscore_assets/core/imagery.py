"""Granules (scenes as GeoTIFF) and the grid patches cut from them.

A granule is a north-up EPSG:3857 raster whose edges fall on zoom-z tile edges, so patches are
exact tiles.  Patches of one country-year are kept as one uint8 stack (fast to train and score
from) plus an index of every tile, including the ones that were not usable and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_bounds

from .files import atomic_path
from .grid import Tile, block_bounds_3857

WORLD_HALF = 20037508.342789244
STATUS_OK = "ok"
STATUS_BLANK = "blank"
STATUS_CORRUPT = "corrupt"
STATUS_CLOUDY = "cloudy"
DEFAULT_MAX_CLOUD = 0.15  # cloud_fraction at which a tile is reported cloudy instead of scored


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
        "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint8",
        "crs": "EPSG:3857", "transform": transform, "compress": "deflate",
        "photometric": "RGB", "interleave": "pixel",
    }
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.moveaxis(image, 2, 0))
        dst.update_tags(zoom=str(z), tile_x0=str(x0), tile_y0=str(y0), tiles_x=str(nx), tiles_y=str(ny))
    return GranuleInfo(path.stem, path, x0, y0, nx, ny, w, h)


def split_scene(
    scene: np.ndarray, z: int, x0: int, y0: int, nx: int, ny: int, tile_px: int,
    granule_tiles: int, out_dir: Path,
) -> list[GranuleInfo]:
    """Cut a country-wide scene into granules of granule_tiles x granule_tiles tiles."""
    out: list[GranuleInfo] = []
    for gy in range(0, ny, granule_tiles):
        for gx in range(0, nx, granule_tiles):
            gnx, gny = min(granule_tiles, nx - gx), min(granule_tiles, ny - gy)
            sub = scene[gy * tile_px:(gy + gny) * tile_px, gx * tile_px:(gx + gnx) * tile_px]
            gid = f"g_{x0 + gx}_{y0 + gy}"
            out.append(write_granule(np.ascontiguousarray(sub), z, x0 + gx, y0 + gy, gnx, gny,
                                     out_dir / f"{gid}.tif"))
    return out


def cloud_fraction(tile: np.ndarray, min_level: int = 195, max_chroma: int = 20) -> float:
    """Share of near-white, colourless pixels: a cheap, explainable cloud proxy.

    Roofs and roads are bright too, but on the synthetic country even the densest town tiles stay
    under 10 % while clouded tiles reach 15-80 %; real imagery should use the scene's cloud mask
    when it has one.
    """
    t = tile.astype(np.int16)
    lo = t.min(axis=-1)
    return float(((lo >= min_level) & ((t.max(axis=-1) - lo) <= max_chroma)).mean())


def tile_status(tile: np.ndarray, min_std: float = 1.0, max_cloud: float = DEFAULT_MAX_CLOUD) -> tuple[str, str | None]:
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
            rows.append({"granule_id": Path(path).stem, "z": z, "x": -1, "y": -1,
                         "status": STATUS_CORRUPT, "problem": f"{Path(path).name}: {exc}",
                         "image_row": -1})
            continue
        tpx = data.shape[0] // ny
        for j in range(ny):
            for i in range(nx):
                tile = data[j * tpx:(j + 1) * tpx, i * tpx:(i + 1) * tpx]
                status, problem = tile_status(tile, max_cloud=max_cloud)
                row = {"granule_id": Path(path).stem, "z": z, "x": x0 + i, "y": y0 + j,
                       "status": status, "problem": problem, "image_row": -1}
                if status == STATUS_OK:
                    row["image_row"] = len(images)
                    images.append(tile)
                rows.append(row)
    index = pd.DataFrame(rows)
    good = index["x"] >= 0
    index.loc[good, "tile_id"] = [Tile(z, x, y).tile_id for x, y in zip(index.loc[good, "x"], index.loc[good, "y"])]
    index = _add_bounds(index)
    stack = np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
    return index, stack


def _add_bounds(index: pd.DataFrame) -> pd.DataFrame:
    """Tile bounds as plain numbers (EPSG:3857 and lon/lat centre): no DuckDB extension needed."""
    out = index.copy()
    for col in ("left", "bottom", "right", "top", "lon", "lat"):
        out[col] = np.nan
    ok = out["x"] >= 0
    if ok.any():
        tiles = [Tile(int(z), int(x), int(y)) for z, x, y in zip(out.loc[ok, "z"], out.loc[ok, "x"], out.loc[ok, "y"])]
        b = np.array([t.bounds_3857() for t in tiles])
        c = np.array([t.center_lonlat() for t in tiles])
        out.loc[ok, ["left", "bottom", "right", "top"]] = b
        out.loc[ok, ["lon", "lat"]] = c
    return out


def save_stack(stack: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, stack)


def load_stack(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"patch stack not found: {path} (materialise 'patches' first)")
    return np.load(path)


def contact_sheet(images: np.ndarray, cols: int = 8, pad: int = 2) -> np.ndarray:
    """A grid of sample tiles in one RGB image: how a person checks a cluster at a glance."""
    n = len(images)
    if n == 0:
        return np.zeros((8, 8, 3), np.uint8)
    h, w = images.shape[1:3]
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        sheet[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = images[k]
    return sheet
