"""Tile pyramids on disk, ``<root>/<z>/<x>/<y>.<ext>`` (XYZ, what MapLibre reads):

- the country's own imagery per year: every tile's image at zoom 14, read from the tile store in
  batches, then each coarser zoom down to 8 made from its four children *as read back from
  disk*, so only one tile's pixels and the set of tile coordinates are ever in memory;
- value layers (siScore of a year, change between two years): one 64 x 64 image per zoom-8
  tile, one pixel per zoom-14 tile, coloured by a scale; coarser zooms average 2 x 2 pixels.
  MapLibre shows them at any closer zoom with nearest-neighbour resampling, so a country costs
  a handful of small PNGs per layer, not one file per tile.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from siscore_assets.core.storage.tile_store import open_stack

GRID_ZOOM = 14
#: Zoom of the value layers' finest tiles: 64 x 64 pixels, one per zoom-14 tile.
VALUE_ZOOM = 8
VALUE_PX = 2 ** (GRID_ZOOM - VALUE_ZOOM)
IMAGE_EXT = "webp"
#: Reads a stack's rows: (stack path, rows) -> uint8 (n, px, px, 3).
ImageReader = Callable[[str, np.ndarray], np.ndarray]


def store_reader(stack_path: str, rows: np.ndarray) -> np.ndarray:
    """The default :data:`ImageReader`: the tile store (or legacy stack) the patches name."""
    return np.asarray(open_stack(stack_path)[np.asarray(rows, dtype=np.int64)])


def tile_path(root: Path, z: int, x: int, y: int, ext: str) -> Path:
    return root / str(z) / str(x) / f"{y}.{ext}"


def _save(image: Image.Image, path: Path, ext: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == "webp":
        image.save(path, format="WEBP", quality=72, method=0)  # 3 ms a tile; method 2: 7 ms, -9 %
    else:
        image.save(path, format="PNG", optimize=False, compress_level=6)
    return path.stat().st_size


def write_imagery(
    tiles: pd.DataFrame,
    root: Path,
    reader: ImageReader = store_reader,
    min_zoom: int = VALUE_ZOOM,
    batch: int = 256,
) -> dict[str, int]:
    """Write one year's imagery pyramid under ``root``; ``tiles`` has x, y, image_row (>= 0)
    and stack_path.  Returns counts: tiles per zoom, bytes, the image size ``px``."""
    have = tiles[tiles["image_row"] >= 0]
    done: set[tuple[int, int]] = set()
    stats = {"bytes": 0, "px": 0}
    for stack, group in have.groupby("stack_path", sort=True):
        group = group.sort_values("image_row")
        rows, xs, ys = (group[c].to_numpy(np.int64) for c in ("image_row", "x", "y"))
        for start in range(0, len(group), batch):
            images = reader(str(stack), rows[start : start + batch])
            for img, x, y in zip(images, xs[start : start + batch], ys[start : start + batch]):
                stats["px"] = int(img.shape[0])
                pil = Image.fromarray(np.ascontiguousarray(img[..., :3]), "RGB")
                stats["bytes"] += _save(pil, tile_path(root, GRID_ZOOM, x, y, IMAGE_EXT), "webp")
                done.add((int(x), int(y)))
    stats[f"z{GRID_ZOOM}"] = len(done)
    px = stats["px"]
    level = done
    for z in range(GRID_ZOOM - 1, min_zoom - 1, -1):
        parents = sorted({(x >> 1, y >> 1) for x, y in level})
        for px_, py_ in parents:
            canvas = Image.new("RGBA", (2 * px, 2 * px), (0, 0, 0, 0))
            for dx in (0, 1):
                for dy in (0, 1):
                    child = (2 * px_ + dx, 2 * py_ + dy)
                    if child in level:
                        with Image.open(tile_path(root, z + 1, *child, IMAGE_EXT)) as im:
                            canvas.paste(im.convert("RGBA"), (dx * px, dy * px))
            small = canvas.reduce(2)
            stats["bytes"] += _save(small, tile_path(root, z, px_, py_, IMAGE_EXT), "webp")
        stats[f"z{z}"] = len(parents)
        level = set(parents)
    return stats


def value_blocks(x: np.ndarray, y: np.ndarray, value: np.ndarray) -> dict:
    """Zoom-8 blocks of a value per zoom-14 tile: {(x8, y8): 64 x 64 float array, NaN where no
    value}."""
    blocks: dict[tuple[int, int], np.ndarray] = {}
    shift = GRID_ZOOM - VALUE_ZOOM
    for bx, by, ix, iy, v in zip(
        x >> shift, y >> shift, x & (VALUE_PX - 1), y & (VALUE_PX - 1), value
    ):
        key = (int(bx), int(by))
        if key not in blocks:
            blocks[key] = np.full((VALUE_PX, VALUE_PX), np.nan, np.float32)
        blocks[key][iy, ix] = v
    return blocks


def _coarser(blocks: dict) -> dict:
    """The next zoom out: 2 x 2 blocks side by side, each 2 x 2 pixels averaged (NaN ignored)."""
    out: dict[tuple[int, int], np.ndarray] = {}
    n = VALUE_PX
    for px_, py_ in sorted({(x >> 1, y >> 1) for x, y in blocks}):
        big = np.full((2 * n, 2 * n), np.nan, np.float32)
        for dx in (0, 1):
            for dy in (0, 1):
                b = blocks.get((2 * px_ + dx, 2 * py_ + dy))
                if b is not None:
                    big[dy * n : (dy + 1) * n, dx * n : (dx + 1) * n] = b
        quads = big.reshape(n, 2, n, 2).transpose(0, 2, 1, 3).reshape(n, n, 4)
        count = np.isfinite(quads).sum(axis=2)
        total = np.nansum(quads, axis=2)
        out[(px_, py_)] = np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(
            np.float32
        )
    return out


def write_values(
    blocks: dict,
    root: Path,
    colour: Callable[[np.ndarray], np.ndarray],
    min_zoom: int = 5,
    opacity: dict | None = None,
) -> dict[str, int]:
    """Write a value layer's tiles from zoom 8 down to ``min_zoom``; ``colour`` maps a float
    array (NaN = none) to uint8 RGBA; ``opacity`` (blocks like ``blocks``, 0-1) scales each
    pixel's alpha, averaged like the values at coarser zooms.  Returns tile counts and bytes."""
    stats = {"bytes": 0}
    level, alpha = blocks, opacity
    for z in range(VALUE_ZOOM, min_zoom - 1, -1):
        for (bx, by), arr in level.items():
            rgba = colour(arr)
            if alpha is not None and (bx, by) in alpha:
                a = np.nan_to_num(alpha[(bx, by)], nan=1.0)
                rgba[..., 3] = np.round(rgba[..., 3] * np.clip(a, 0, 1)).astype(np.uint8)
            image = Image.fromarray(rgba, "RGBA")
            stats["bytes"] += _save(image, tile_path(root, z, bx, by, "png"), "png")
        stats[f"z{z}"] = len(level)
        if z > min_zoom:
            level = _coarser(level)
            alpha = _coarser(alpha) if alpha is not None else None
    return stats


def folder_size(root: str | os.PathLike[str]) -> tuple[int, int]:
    """(bytes, files) under ``root``: what the site costs on disk."""
    total = files = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.path.getsize(os.path.join(dirpath, name))
            files += 1
    return total, files


def bounds_of(xs: Iterable[int], ys: Iterable[int]) -> tuple[int, int, int, int]:
    """(min x, min y, max x, max y) of zoom-14 tile coordinates."""
    xs, ys = list(xs), list(ys)
    return min(xs), min(ys), max(xs), max(ys)
