"""Tile means of proxy rasters in any CRS: exact tile bounds, nodata left out, bad files named."""

from __future__ import annotations

import mercantile
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from siscore_assets.core.analysis.proxy_rasters import LayerFileError, proxy_table, tile_means

Z, X0, Y0 = 14, 13990, 6259


def _tiles(nx: int = 3, ny: int = 2) -> pd.DataFrame:
    rows = [
        {"tile_id": f"{Z}/{x}/{y}", "z": Z, "x": x, "y": y}
        for y in range(Y0, Y0 + ny)
        for x in range(X0, X0 + nx)
    ]
    return pd.DataFrame(rows)


def _lonlat_raster(
    path, value_of, *, res: float = 0.001, nodata: float | None = -1.0, crs="EPSG:4326"
):
    """A raster covering the tiles (plus a margin) whose pixel value is ``value_of(lon, lat)``."""
    west, north = (
        mercantile.bounds(X0 - 1, Y0 - 1, Z).west,
        mercantile.bounds(X0 - 1, Y0 - 1, Z).north,
    )
    east, south = (
        mercantile.bounds(X0 + 4, Y0 + 3, Z).east,
        mercantile.bounds(X0 + 4, Y0 + 3, Z).south,
    )
    w, h = int((east - west) / res), int((north - south) / res)
    lon = west + (np.arange(w) + 0.5) * res
    lat = north - (np.arange(h) + 0.5) * res
    data = value_of(*np.meshgrid(lon, lat)).astype("float32")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs=crs,
        transform=from_origin(west, north, res, res),
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return path


def test_constant_per_tile_raster_gives_each_tile_its_value(tmp_path):
    tiles = _tiles()

    def value(lon, lat):  # the value is the tile's column index: exact if bounds are exact
        out = np.zeros(lon.shape)
        for i in range(-1, 5):
            b = mercantile.bounds(X0 + i, Y0, Z)
            out[(lon >= b.west) & (lon < b.east)] = 10 + i
        return out

    path = _lonlat_raster(tmp_path / "cols.tif", value, res=0.0005)
    got = tile_means(path, tiles)
    want = 10 + (tiles["x"] - X0).to_numpy()
    assert np.allclose(got, want, atol=0.02)


def test_nodata_is_left_out_and_uncovered_tiles_are_nan(tmp_path):
    tiles = _tiles()
    b = mercantile.bounds(X0, Y0, Z)
    mid = (b.west + b.east) / 2

    def value(lon, lat):  # tile X0 row Y0: left half nodata, right half 5; elsewhere 2
        out = np.full(lon.shape, 2.0)
        left = (lon >= b.west) & (lon < mid) & (lat <= b.north) & (lat > b.south)
        right = (lon >= mid) & (lon < b.east) & (lat <= b.north) & (lat > b.south)
        out[left], out[right] = -1.0, 5.0
        return out

    path = _lonlat_raster(tmp_path / "nd.tif", value)
    got = tile_means(path, tiles)
    assert got[0] == pytest.approx(5.0, abs=0.05)  # the nodata half does not pull the mean down
    assert np.allclose(got[1:], 2.0, atol=0.05)
    far = pd.DataFrame([{"tile_id": "14/100/100", "z": 14, "x": 100, "y": 100}])
    assert np.isnan(tile_means(path, far)[0])


def test_utm_raster_is_reprojected(tmp_path):
    """A raster in UTM 52N (as the NK layers) of value = easting: each tile's mean is the easting
    of its centre (to a fraction of a tile)."""
    from pyproj import Transformer

    tiles = _tiles()
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    west, north = to_utm.transform(
        mercantile.bounds(X0 - 1, Y0 - 1, Z).west, mercantile.bounds(X0 - 1, Y0 - 1, Z).north
    )
    res, w, h = 50.0, 400, 300
    east_of = west + (np.arange(w) + 0.5) * res
    data = np.tile(east_of, (h, 1)).astype("float32")
    path = tmp_path / "utm.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs="EPSG:32652",
        transform=from_origin(west, north + 2000, res, res),
    ) as dst:
        dst.write(data, 1)
    got = tile_means(path, tiles)
    centres = [mercantile.bounds(x, y, Z) for x, y in zip(tiles["x"], tiles["y"], strict=True)]
    want = [to_utm.transform((c.west + c.east) / 2, (c.south + c.north) / 2)[0] for c in centres]
    assert np.allclose(got, want, atol=60)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_bad_raster_files_are_named(tmp_path):
    tiles = _tiles()
    with pytest.raises(LayerFileError, match="not found"):
        tile_means(tmp_path / "missing.tif", tiles)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not a tiff")
    with pytest.raises(LayerFileError, match=r"broken\.tif: not a readable raster"):
        tile_means(broken, tiles)
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(
        nocrs, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8"
    ) as dst:
        dst.write(np.ones((4, 4), np.uint8), 1)
    with pytest.raises(LayerFileError, match=r"nocrs\.tif: raster has no CRS"):
        tile_means(nocrs, tiles)


def test_proxy_table_has_one_column_per_raster(tmp_path):
    tiles = _tiles()
    a = _lonlat_raster(tmp_path / "a.tif", lambda lon, lat: np.full(lon.shape, 3.0))
    table = proxy_table({"nightlight": a, "built_up_share": a}, tiles)
    assert list(table.columns) == ["tile_id", "z", "x", "y", "nightlight", "built_up_share"]
    assert np.allclose(table["nightlight"], 3.0)
