"""Rasters: exact tile bounds, pixel <-> tile round trip, nodata, quicklook, change frames."""

from __future__ import annotations

import mercantile
import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from siscore_assets.core.grid import Tile, block_bounds_3857
from siscore_assets.core.rasters import (
    change_frame,
    grid_array,
    pixel_to_tile,
    write_grid_geotiff,
    write_quicklook_png,
)

Z = 14
T0 = mercantile.tile(125.75, 39.03, Z)  # a Pyongyang tile
X0, Y0, NX, NY = T0.x, T0.y, 5, 4


def _block_df(missing=((3, 2),), nan_at=((0, 1),)) -> pd.DataFrame:
    """5x4 block, value = 10*row + col; one tile absent, one tile with NaN score."""
    rows = []
    for r in range(NY):
        for c in range(NX):
            if (r, c) in missing:
                continue
            v = np.nan if (r, c) in nan_at else 10.0 * r + c
            rows.append({"z": Z, "x": X0 + c, "y": Y0 + r, "score": v})
    return pd.DataFrame(rows)


def test_grid_array_places_values_and_nans():
    arr, block = grid_array(_block_df(), "score")
    assert block == (X0, Y0, NX, NY)
    assert arr.dtype == np.float32 and arr.shape == (NY, NX)
    assert arr[2, 4] == 24.0 and arr[0, 0] == 0.0
    assert np.isnan(arr[3, 2]) and np.isnan(arr[0, 1])
    assert np.isfinite(arr).sum() == NX * NY - 2


def test_grid_array_rejects_mixed_zoom_and_duplicates():
    df = _block_df()
    bad = df.copy()
    bad.loc[0, "z"] = 13
    with pytest.raises(ValueError, match="mixed zooms"):
        grid_array(bad, "score")
    with pytest.raises(ValueError, match="not 12"):
        grid_array(df, "score", z=12)
    with pytest.raises(ValueError, match="duplicate"):
        grid_array(pd.concat([df, df.head(1)]), "score")


def test_geotiff_transform_bounds_nodata(tmp_path):
    path = write_grid_geotiff(_block_df(), "score", tmp_path / "s.tif", units="siScore [0,1]")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 3857
        assert (src.width, src.height, src.count) == (NX, NY, 1)
        assert src.dtypes == ("float32",)
        np.testing.assert_allclose(tuple(src.bounds), block_bounds_3857(Z, X0, Y0, NX, NY),
                                   rtol=0, atol=1e-6)
        left, bottom, right, top = Tile(Z, X0, Y0).bounds_3857()
        assert src.transform.a == pytest.approx(right - left, abs=1e-9)
        assert src.transform.e == pytest.approx(-(top - bottom), abs=1e-9)
        assert np.isnan(src.nodata)
        assert src.profile["compress"].lower() == "deflate"
        assert not src.profile.get("tiled", False)
        tags = src.tags()
        assert tags["units"] == "siScore [0,1]" and tags["z"] == str(Z) and "score" in tags["description"]
        assert src.descriptions == ("score",)
        data = src.read(1)
        mask = src.read_masks(1)
    assert np.isnan(data[3, 2]) and np.isnan(data[0, 1])
    assert mask[3, 2] == 0 and mask[0, 1] == 0 and mask[1, 1] == 255
    assert data[2, 4] == 24.0


def test_every_pixel_is_exactly_its_tile(tmp_path):
    path = write_grid_geotiff(_block_df(), "score", tmp_path / "s.tif")
    with rasterio.open(path) as src:
        for r in range(NY):
            for c in range(NX):
                tile = Tile(Z, X0 + c, Y0 + r)
                np.testing.assert_allclose(src.window_bounds(Window(c, r, 1, 1)),
                                           tile.bounds_3857(), rtol=0, atol=1e-6)
                assert pixel_to_tile(path, r, c) == tile
    with pytest.raises(IndexError):
        pixel_to_tile(path, NY, 0)


def test_numeric_nodata(tmp_path):
    path = write_grid_geotiff(_block_df(), "score", tmp_path / "s.tif", nodata=-9999.0)
    with rasterio.open(path) as src:
        assert src.nodata == -9999.0
        m = src.read(1, masked=True)
    assert m.mask[3, 2] and m.mask[0, 1] and m.count() == NX * NY - 2
    df = _block_df()
    df.loc[5, "score"] = -9999.0
    with pytest.raises(ValueError, match="collides"):
        write_grid_geotiff(df, "score", tmp_path / "bad.tif", nodata=-9999.0)


def test_big_raster_is_tiled_cog(tmp_path):
    n = 256
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    df = pd.DataFrame({"z": Z, "x": X0 + xs.ravel(), "y": Y0 + ys.ravel(),
                       "score": (xs.ravel() / n).astype(float)})
    path = write_grid_geotiff(df, "score", tmp_path / "big.tif")
    with rasterio.open(path) as src:
        assert src.block_shapes == [(256, 256)]
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.tags()["z"] == str(Z)
        np.testing.assert_allclose(tuple(src.bounds), block_bounds_3857(Z, X0, Y0, n, n),
                                   rtol=0, atol=1e-6)
        assert src.read(1)[7, 128] == pytest.approx(0.5)
    assert pixel_to_tile(path, 255, 3) == Tile(Z, X0 + 3, Y0 + 255)


def test_quicklook_png(tmp_path):
    path = write_quicklook_png(_block_df(), "score", tmp_path / "q.png", vmin=0, vmax=40,
                               title="test", figsize=(4, 3), dpi=50)
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (200, 150)


def test_change_frame():
    cur = pd.DataFrame({"z": Z, "x": [1, 2, 3], "y": [5, 5, 5], "score": [0.5, 0.0, 0.9],
                        "tile_id": ["14/1/5", "14/2/5", "14/3/5"]})
    prev = pd.DataFrame({"z": Z, "x": [1, 2, 4, 5], "y": 5, "score": [0.25, 0.1, 0.3, 0.3]})
    out = change_frame(cur, prev)
    assert list(out["x"]) == [1, 2]
    np.testing.assert_allclose(out["delta"], [0.25, -0.1])
    np.testing.assert_allclose(out["log_ratio"], [np.log(0.51 / 0.26), np.log(0.01 / 0.11)])
    assert out.attrs["n_only_cur"] == 1 and out.attrs["n_only_prev"] == 2
    assert list(out["tile_id"]) == ["14/1/5", "14/2/5"]
    out0 = change_frame(cur, prev, eps=0.0)
    assert out0["log_ratio"].iloc[0] == pytest.approx(np.log(2.0))
    with pytest.raises(ValueError, match="duplicate"):
        change_frame(pd.concat([cur, cur]), prev)
