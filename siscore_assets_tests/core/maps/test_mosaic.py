"""Mosaics: the vectorised fill equals the per-patch loop, the GeoTIFF lands on the granule's tile
bounds, the comparison function catches any difference, and the CUDA path says clearly why it
cannot run (and, on a machine with a GPU, gives the numpy overlay bit for bit)."""

from __future__ import annotations

import sys
import types

import mercantile
import numpy as np
import pandas as pd
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from siscore_assets.core.imagery.grid import Tile, block_bounds_3857
from siscore_assets.core.maps import mosaic, mosaic_cuda

Z, X0, Y0 = 14, 13903, 6163


def _scores(ny: int, nx: int, seed: int = 0, nan_share: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.random((ny, nx), dtype=np.float32)
    s[rng.random((ny, nx)) < nan_share] = np.nan
    return s


@settings(max_examples=25, deadline=None)
@given(
    ny=st.integers(1, 9),
    nx=st.integers(1, 9),
    tile_px=st.integers(1, 13),
    threads=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_vectorised_fill_equals_the_per_patch_loop(ny, nx, tile_px, threads, seed):
    s = _scores(ny, nx, seed)
    fast = mosaic.fill_overlay(s, tile_px, threads=threads)
    ref = mosaic.fill_overlay_loop(s, tile_px)
    assert fast.shape == (ny * tile_px, nx * tile_px) and fast.dtype == np.float32
    assert mosaic.compare_overlays(fast, ref).identical


def test_fill_into_a_preallocated_buffer_and_bad_input():
    s = _scores(4, 3)
    s[1, 2] = 0.125
    out = np.full((4 * 5, 3 * 5), 7.0, np.float32)
    assert mosaic.fill_overlay(s, 5, out=out) is out
    assert out[7, 11] == s[1, 2] and np.isnan(out).sum() == 25 * np.isnan(s).sum()
    with pytest.raises(ValueError, match="shape"):
        mosaic.fill_overlay(s, 5, out=np.empty((20, 14), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        mosaic.fill_overlay(np.zeros(5, np.float32), 3)
    with pytest.raises(ValueError, match="tile_px"):
        mosaic.fill_overlay(s, 0)
    with pytest.raises(ValueError, match="unknown mosaic backend"):
        mosaic.fill(s, 3, backend="opencl")


def test_scores_block_places_masks_and_ignores_outside_tiles():
    df = pd.DataFrame(
        {
            "x": [X0, X0 + 1, X0 + 2, X0 + 9],
            "y": [Y0, Y0 + 1, Y0, Y0],
            "score": [0.5, 0.25, 0.75, 0.9],
            "inhabited": [True, True, False, True],
        }
    )
    b = mosaic.scores_block(df, X0, Y0, 3, 2, mask_col="inhabited")
    assert b.shape == (2, 3)
    assert b[0, 0] == 0.5 and b[1, 1] == 0.25
    assert np.isnan(b[0, 2])  # uninhabited
    assert np.isnan(b[1, 0]) and np.isnan(b[0, 1])  # no tile
    with pytest.raises(ValueError, match="duplicate"):
        mosaic.scores_block(pd.concat([df, df]), X0, Y0, 3, 2)


@pytest.mark.parametrize("compress", [None, "deflate"])
def test_overlay_geotiff_sits_on_the_granule_tiles(tmp_path, compress):
    ny, nx, tp = 3, 4, 40
    s = _scores(ny, nx, seed=3)
    path = mosaic.write_overlay(
        mosaic.fill_overlay(s, tp), Z, X0, Y0, nx, ny, tmp_path / "g.tif", compress=compress
    )
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 3857 and src.profile["tiled"]
        np.testing.assert_allclose(
            tuple(src.bounds), block_bounds_3857(Z, X0, Y0, nx, ny), rtol=0, atol=1e-6
        )
        data = src.read(1)
        assert np.isnan(src.nodata)
        # every pixel's centre falls in the tile whose score it carries
        for r in range(0, ny * tp, 7):
            for c in range(0, nx * tp, 9):
                lon, lat = mercantile.lnglat(*src.xy(r, c))
                t = mercantile.tile(lon, lat, Z)
                expect = s[t.y - Y0, t.x - X0]
                assert (np.isnan(expect) and np.isnan(data[r, c])) or data[r, c] == expect
        assert src.tags()["tile_px"] == str(tp)
    assert Tile(Z, X0, Y0).bounds_3857()[0] == pytest.approx(
        block_bounds_3857(Z, X0, Y0, nx, ny)[0]
    )
    with pytest.raises(ValueError, match="does not divide"):
        mosaic.write_overlay(np.zeros((10, 10), np.float32), Z, X0, Y0, 3, 3, tmp_path / "bad.tif")
    assert not (tmp_path / "bad.tif").exists()


def test_same_scores_same_file(tmp_path):
    ov = mosaic.fill_overlay(_scores(5, 5, seed=9), 32)
    a = mosaic.write_overlay(ov, Z, X0, Y0, 5, 5, tmp_path / "a.tif")
    b = mosaic.write_overlay(ov.copy(), Z, X0, Y0, 5, 5, tmp_path / "b.tif")
    assert a.read_bytes() == b.read_bytes()


def test_compare_overlays_catches_every_kind_of_difference():
    a = mosaic.fill_overlay(_scores(3, 3, seed=1), 4)
    same = mosaic.compare_overlays(a, a.copy())
    assert same.identical and same.differing == 0 and same.max_abs_diff == 0.0
    b = a.copy()
    finite = np.argwhere(np.isfinite(b))[0]
    b[tuple(finite)] = np.nextafter(b[tuple(finite)], np.float32(2))
    one = mosaic.compare_overlays(a, b)
    assert (
        not one.identical
        and one.differing == 1
        and 0 < one.max_abs_diff < 1e-6
        and one.nan_mismatch == 0
    )
    c = a.copy()
    c[tuple(finite)] = np.nan
    nanned = mosaic.compare_overlays(a, c)
    assert not nanned.identical and nanned.nan_mismatch == 1
    assert not mosaic.compare_overlays(a, a[:-1]).identical


def test_cuda_path_without_pycuda_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)  # import pycuda -> ImportError
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    ok, why = mosaic_cuda.cuda_status()
    assert not ok and "pip install -e '.[gpu]'" in why
    with pytest.raises(mosaic_cuda.CudaUnavailable, match="PyCUDA is not installed"):
        mosaic.fill(_scores(2, 2), 3, backend="cuda")


def test_cuda_path_without_a_device_is_a_clear_error(monkeypatch):
    driver = types.SimpleNamespace(init=lambda: None, Device=types.SimpleNamespace(count=lambda: 0))
    compiler = types.SimpleNamespace(SourceModule=object)
    pkg = types.ModuleType("pycuda")
    pkg.driver, pkg.compiler = driver, compiler
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", compiler)
    assert mosaic_cuda.cuda_status() == (False, "no CUDA device found")
    with pytest.raises(mosaic_cuda.CudaUnavailable, match="no CUDA device"):
        mosaic_cuda.fill_overlay_cuda(_scores(2, 2), 3)


def test_cuda_kernel_source_is_the_same_rule():
    """The kernel's index rule, run in numpy, reproduces the fill (the GPU test runs the kernel)."""
    s = _scores(5, 7, seed=4)
    tp = 6
    rows, cols = np.indices((5 * tp, 7 * tp))
    emulated = s.ravel()[(rows // tp) * 7 + (cols // tp)]
    assert mosaic.compare_overlays(emulated, mosaic.fill_overlay(s, tp)).identical
    assert "(r / tile_px) * nx + (c / tile_px)" in mosaic_cuda.KERNEL_SOURCE


CUDA_OK, CUDA_WHY = mosaic_cuda.cuda_status()


@pytest.mark.skipif(not CUDA_OK, reason=f"CUDA mosaic path not runnable here: {CUDA_WHY}")
@pytest.mark.parametrize(("ny", "nx", "tp"), [(1, 1, 1), (3, 5, 7), (32, 32, 343)])
def test_numpy_and_cuda_overlays_are_identical(ny, nx, tp):
    s = _scores(ny, nx, seed=ny * nx)
    gpu = mosaic_cuda.fill_overlay_cuda(s, tp)
    cmp = mosaic.compare_overlays(mosaic.fill_overlay(s, tp), gpu.overlay)
    assert cmp.identical, cmp
