"""Full-resolution siScore overlays: every image pixel of a granule carries its patch's score.

The reproduction stitched 32 x 32 patches of 343 px into a 10,976 px square granule (482 MB as
float32) with a Python loop per patch (37 s per granule) or a GPU kernel (0.2 s).  The fill is a
pure broadcast, so here it is one vectorised numpy assignment per band of tile rows, run on a few
threads (numpy releases the GIL for plain copies), which makes it memory-bound.  The CUDA kernel in
:mod:`siscore_assets.core.maps.mosaic_cuda` computes the same array; :func:`compare_overlays` is
how the two are checked against each other.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_bounds

from siscore_assets.core.imagery.grid import block_bounds_3857
from siscore_assets.core.maps.overlay import check_scores, scores_block
from siscore_assets.core.storage.files import atomic_path

__all__ = [
    "BACKENDS",
    "OVERLAY_BLOCK",
    "OverlayComparison",
    "compare_overlays",
    "fill",
    "fill_overlay",
    "fill_overlay_loop",
    "preview",
    "scores_block",
    "write_overlay",
    "write_overlay_at",
]

#: Internal tile size of overlay GeoTIFFs.
OVERLAY_BLOCK = 512
BACKENDS = ("numpy", "cuda")


def fill_overlay(
    scores: np.ndarray,
    tile_px: int,
    *,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Expand (ny, nx) patch scores to a (ny*tile_px, nx*tile_px) float32 overlay.

    Each band of tile rows is one broadcast assignment into a 4-D view of the output
    (``out[j, :, i, :] = scores[j, i]``); bands go to ``threads`` workers (default: CPU count,
    at most 8).  Pass a preallocated ``out`` to skip the allocation (and page faults) when filling
    many granules.
    """
    scores = check_scores(scores, tile_px)
    ny, nx = scores.shape
    shape = (ny * tile_px, nx * tile_px)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    view = out.reshape(ny, tile_px, nx, tile_px)
    src = scores[:, None, :, None]
    workers = max(1, min(threads or os.cpu_count() or 1, 8, ny))
    if workers == 1:
        view[...] = src
        return out
    edges = np.linspace(0, ny, workers + 1).astype(int)

    def band(k: int) -> None:
        a, b = edges[k], edges[k + 1]
        view[a:b] = src[a:b]

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(band, range(workers)))
    return out


def fill_overlay_loop(scores: np.ndarray, tile_px: int) -> np.ndarray:
    """The reproduction's way, one slice assignment per patch: the reference the vectorised and
    CUDA fills are tested against, and the serial baseline of the benchmark."""
    scores = check_scores(scores, tile_px)
    ny, nx = scores.shape
    out = np.empty((ny * tile_px, nx * tile_px), dtype=np.float32)
    for j in range(ny):
        for i in range(nx):
            out[j * tile_px : (j + 1) * tile_px, i * tile_px : (i + 1) * tile_px] = scores[j, i]
    return out


def fill(scores: np.ndarray, tile_px: int, backend: str = "numpy") -> np.ndarray:
    """Fill with the named backend ('numpy' or 'cuda'); 'cuda' raises
    :class:`~siscore_assets.core.maps.mosaic_cuda.CudaUnavailable` with the reason when it cannot
    run."""
    if backend == "numpy":
        return fill_overlay(scores, tile_px)
    if backend == "cuda":
        from siscore_assets.core.maps.mosaic_cuda import fill_overlay_cuda

        return fill_overlay_cuda(scores, tile_px).overlay
    raise ValueError(f"unknown mosaic backend {backend!r}; choose one of {BACKENDS}")


@dataclass(frozen=True)
class OverlayComparison:
    identical: bool
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    nan_mismatch: int  # pixels NaN in one overlay only
    max_abs_diff: float  # over pixels finite in both
    differing: int  # pixels whose bits differ (NaN == NaN)


def compare_overlays(a: np.ndarray, b: np.ndarray) -> OverlayComparison:
    """Bit-for-bit comparison of two overlays (NaN equals NaN): the numpy vs CUDA check."""
    if a.shape != b.shape:
        return OverlayComparison(False, a.shape, b.shape, -1, float("inf"), -1)
    na, nb = np.isnan(a), np.isnan(b)
    nan_mismatch = int(np.count_nonzero(na != nb))
    both = ~(na | nb)
    diff = np.abs(a[both].astype(np.float64) - b[both].astype(np.float64))
    same_bits = (a.view(np.uint32) == b.view(np.uint32)) | (na & nb)
    differing = int(a.size - np.count_nonzero(same_bits))
    return OverlayComparison(
        differing == 0,
        a.shape,
        b.shape,
        nan_mismatch,
        float(diff.max()) if diff.size else 0.0,
        differing,
    )


def write_overlay(
    overlay: np.ndarray,
    z: int,
    x0: int,
    y0: int,
    nx: int,
    ny: int,
    path: str | Path,
    *,
    compress: str | None = "deflate",
    threads: str = "ALL_CPUS",
    tags: dict[str, str] | None = None,
) -> Path:
    """Write an overlay as a tiled float32 GeoTIFF on the granule's exact EPSG:3857 tile bounds.

    NaN is nodata.  ``compress`` None writes raw tiles (fastest, 4 bytes a pixel); 'deflate' or
    'zstd' (with the float predictor, GDAL compressing on ``threads``) shrink the blocky overlay a
    lot.  Written through a temporary file, so a failure keeps the previous overlay.
    """
    h, w = overlay.shape
    if h % ny or w % nx:
        raise ValueError(f"overlay {w}x{h} px does not divide into {nx}x{ny} tiles")
    return write_overlay_at(
        overlay,
        "EPSG:3857",
        block_bounds_3857(z, x0, y0, nx, ny),
        path,
        compress=compress,
        threads=threads,
        tags={
            "z": str(z),
            "tile_x0": str(x0),
            "tile_y0": str(y0),
            "tiles_x": str(nx),
            "tiles_y": str(ny),
            "tile_px": str(h // ny),
            **(tags or {}),
        },
    )


def write_overlay_at(
    overlay: np.ndarray,
    crs: str,
    bounds: tuple[float, float, float, float],
    path: str | Path,
    *,
    compress: str | None = "deflate",
    threads: str = "ALL_CPUS",
    tags: dict[str, str] | None = None,
) -> Path:
    """:func:`write_overlay` on any CRS and bounds (a granule's patches in its UTM zone)."""
    h, w = overlay.shape
    block = OVERLAY_BLOCK if min(h, w) >= OVERLAY_BLOCK else 16 * max(1, min(h, w) // 16)
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": from_bounds(*bounds, w, h),
        "nodata": np.nan,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "BIGTIFF": "IF_SAFER",
    }
    if compress:
        profile.update(compress=compress, predictor=3, num_threads=threads)
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(overlay, 1)
        dst.update_tags(**(tags or {}))
        dst.set_band_description(1, "siScore per pixel (patch score)")
    return Path(path)


def preview(overlay: np.ndarray, max_side: int = 512) -> np.ndarray:
    """A strided thumbnail of an overlay (for a quick picture; NaN kept)."""
    step = max(1, -(-max(overlay.shape) // max_side))
    return overlay[::step, ::step]
