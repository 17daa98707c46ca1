"""The overlay fill as a PyCUDA kernel (optional extra ``gpu``: ``pip install -e '.[gpu]'``).

One thread per output pixel reads its patch's score:
``out[r, c] = scores[r / tile_px, c / tile_px]``, the same array as
:func:`siscore_assets.core.maps.mosaic.fill_overlay` bit for bit (a copy, no arithmetic on the
values).  PyCUDA is imported lazily, so the numpy path never needs it; every way
this path cannot run (no pycuda, no driver, no device, no nvcc) raises :class:`CudaUnavailable`
with the reason.  Kernel compilation needs ``nvcc`` on PATH (PyCUDA's SourceModule).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from siscore_assets.core.maps.overlay import check_scores

KERNEL_SOURCE = r"""
extern "C" __global__ void fill_overlay(float *out, const float *scores, int nx, int tile_px,
                                        int width, int height)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    if (c >= width || r >= height) return;
    out[(size_t)r * width + c] = scores[(r / tile_px) * nx + (c / tile_px)];
}
"""
BLOCK = (32, 8, 1)  # 256 threads; a warp writes 32 consecutive floats (coalesced 128-byte stores)


class CudaUnavailable(RuntimeError):
    """The CUDA mosaic path cannot run here; the message says why and what to install."""


@dataclass(frozen=True)
class CudaFill:
    overlay: np.ndarray
    kernel_ms: float  # kernel only, CUDA events
    h2d_ms: float  # scores to the device
    d2h_ms: float  # overlay back to host memory
    total_ms: float  # wall clock: allocation, copies, kernel (compilation excluded)


def _pycuda():
    try:
        import pycuda.driver as drv
        from pycuda.compiler import SourceModule
    except ImportError as exc:  # pycuda not installed
        raise CudaUnavailable(
            f"PyCUDA is not installed ({exc}); install the optional extra: pip install -e '.[gpu]' "
            "(needs the CUDA toolkit and an NVIDIA driver)"
        ) from exc
    try:
        drv.init()
        n = drv.Device.count()
    except Exception as exc:  # noqa: BLE001 - driver missing/broken is reported, not fatal
        raise CudaUnavailable(f"no usable CUDA driver: {exc}") from exc
    if n == 0:
        raise CudaUnavailable("no CUDA device found")
    return drv, SourceModule


def cuda_status() -> tuple[bool, str]:
    """(True, device name) when the CUDA fill can run, else (False, why not)."""
    try:
        drv, _ = _pycuda()
        return True, drv.Device(0).name()
    except CudaUnavailable as exc:
        return False, str(exc)


class CudaFiller:
    """A context and compiled kernel on device ``device``; reuse it for many granules.

    Use as a context manager (``with CudaFiller() as f: f.fill(scores, 343)``) so the CUDA context
    is released even when a fill fails.
    """

    def __init__(self, device: int = 0) -> None:
        self._drv, source_module = _pycuda()
        self._ctx = self._drv.Device(device).make_context()
        try:
            self._kernel = source_module(KERNEL_SOURCE, no_extern_c=True).get_function(
                "fill_overlay"
            )
        except Exception as exc:  # noqa: BLE001 - e.g. nvcc missing
            self._ctx.pop()
            raise CudaUnavailable(
                f"could not compile the CUDA kernel (is nvcc on PATH?): {exc}"
            ) from exc

    def __enter__(self) -> CudaFiller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.pop()
            self._ctx = None

    def fill(self, scores: np.ndarray, tile_px: int, *, out: np.ndarray | None = None) -> CudaFill:
        """Fill on the GPU and copy the overlay back (into ``out`` if given, e.g. pinned memory)."""
        drv = self._drv
        scores = check_scores(scores, tile_px)
        ny, nx = scores.shape
        height, width = ny * tile_px, nx * tile_px
        if out is None:
            out = np.empty((height, width), dtype=np.float32)
        elif out.shape != (height, width) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {(height, width)}")
        t0 = time.perf_counter()
        d_scores = drv.mem_alloc(scores.nbytes)
        d_out = drv.mem_alloc(out.nbytes)
        try:
            e0, e1, e2, e3 = (drv.Event() for _ in range(4))
            e0.record()
            drv.memcpy_htod(d_scores, scores)
            e1.record()
            grid = ((width + BLOCK[0] - 1) // BLOCK[0], (height + BLOCK[1] - 1) // BLOCK[1], 1)
            self._kernel(
                d_out,
                d_scores,
                np.int32(nx),
                np.int32(tile_px),
                np.int32(width),
                np.int32(height),
                block=BLOCK,
                grid=grid,
            )
            e2.record()
            drv.memcpy_dtoh(out, d_out)
            e3.record()
            e3.synchronize()
            total = (time.perf_counter() - t0) * 1e3
            return CudaFill(out, e1.time_till(e2), e0.time_till(e1), e2.time_till(e3), total)
        finally:
            d_scores.free()
            d_out.free()

    def kernel_only_ms(self, scores: np.ndarray, tile_px: int, repeats: int = 20) -> list[float]:
        """Kernel times, output kept on the device (the GPU 'fill time' of the benchmark)."""
        drv = self._drv
        scores = check_scores(scores, tile_px)
        ny, nx = scores.shape
        height, width = ny * tile_px, nx * tile_px
        d_scores = drv.to_device(scores)
        d_out = drv.mem_alloc(height * width * 4)
        grid = ((width + BLOCK[0] - 1) // BLOCK[0], (height + BLOCK[1] - 1) // BLOCK[1], 1)
        times = []
        try:
            for _ in range(repeats + 1):  # the first launch warms up
                a, b = drv.Event(), drv.Event()
                a.record()
                self._kernel(
                    d_out,
                    d_scores,
                    np.int32(nx),
                    np.int32(tile_px),
                    np.int32(width),
                    np.int32(height),
                    block=BLOCK,
                    grid=grid,
                )
                b.record()
                b.synchronize()
                times.append(a.time_till(b))
        finally:
            d_scores.free()
            d_out.free()
        return times[1:]

    def pinned(self, shape: tuple[int, int]) -> np.ndarray:
        """A page-locked host buffer: the device-to-host copy runs at full PCIe speed into it."""
        return self._drv.pagelocked_empty(shape, np.float32)


def fill_overlay_cuda(scores: np.ndarray, tile_px: int, device: int = 0) -> CudaFill:
    """One-shot GPU fill (context + compile + fill + copy back); CudaUnavailable if it can't."""
    with CudaFiller(device) as filler:
        return filler.fill(scores, tile_px)
