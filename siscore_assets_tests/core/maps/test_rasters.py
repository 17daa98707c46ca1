"""Rasters: exact tile bounds, pixel <-> tile round trip, nodata, quicklook, change frames."""

from __future__ import annotations

import mercantile
import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from siscore_assets.core.imagery.grid import Tile, block_bounds_3857
from siscore_assets.core.maps.rasters import (
    change_between,
    change_frame,
    cog_blocksize,
    grid_array,
    pixel_to_tile,
    raster_matches_grid,
    validate_cog,
    write_change_pair,
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
        np.testing.assert_allclose(
            tuple(src.bounds), block_bounds_3857(Z, X0, Y0, NX, NY), rtol=0, atol=1e-6
        )
        left, bottom, right, top = Tile(Z, X0, Y0).bounds_3857()
        assert src.transform.a == pytest.approx(right - left, abs=1e-9)
        assert src.transform.e == pytest.approx(-(top - bottom), abs=1e-9)
        assert np.isnan(src.nodata)
        assert src.profile["compress"].lower() == "deflate"
        assert src.profile["tiled"] and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        tags = src.tags()
        assert (
            tags["units"] == "siScore [0,1]"
            and tags["z"] == str(Z)
            and "score" in tags["description"]
        )
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
                np.testing.assert_allclose(
                    src.window_bounds(Window(c, r, 1, 1)), tile.bounds_3857(), rtol=0, atol=1e-6
                )
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
    df = pd.DataFrame(
        {
            "z": Z,
            "x": X0 + xs.ravel(),
            "y": Y0 + ys.ravel(),
            "score": (xs.ravel() / n).astype(float),
        }
    )
    path = write_grid_geotiff(df, "score", tmp_path / "big.tif")
    with rasterio.open(path) as src:
        assert src.block_shapes == [(128, 128)] and src.overviews(1) == [2]
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.tags()["z"] == str(Z)
        np.testing.assert_allclose(
            tuple(src.bounds), block_bounds_3857(Z, X0, Y0, n, n), rtol=0, atol=1e-6
        )
        assert src.read(1)[7, 128] == pytest.approx(0.5)
    assert pixel_to_tile(path, 255, 3) == Tile(Z, X0 + 3, Y0 + 255)


def test_quicklook_png(tmp_path):
    path = write_quicklook_png(
        _block_df(),
        "score",
        tmp_path / "q.png",
        vmin=0,
        vmax=40,
        title="test",
        figsize=(4, 3),
        dpi=50,
    )
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (200, 150) and im.mode == "RGBA"


def test_change_frame():
    cur = pd.DataFrame(
        {
            "z": Z,
            "x": [1, 2, 3],
            "y": [5, 5, 5],
            "score": [0.5, 0.0, 0.9],
            "tile_id": ["14/1/5", "14/2/5", "14/3/5"],
        }
    )
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


def _country_grid(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """An SYN-sized grid: random scores, ~10 % of tiles missing, ~30 % uninhabited (score 0)."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    df = pd.DataFrame({"z": Z, "x": X0 + xs.ravel(), "y": Y0 + ys.ravel()})
    df = df[rng.random(len(df)) > 0.1].reset_index(drop=True)
    df["inhabited"] = rng.random(len(df)) > 0.3
    df["raw_score"] = rng.random(len(df)).round(6)
    df["score"] = np.where(df["inhabited"], df["raw_score"], 0.0)
    df["tile_id"] = [Tile(Z, x, y).tile_id for x, y in zip(df["x"], df["y"])]
    return df


def test_round_trip_every_pixel_centre_maps_to_its_tile_and_score(tmp_path):
    """Must-show: each pixel's centre, through the raster's own transform, lies in the bounds of
    the tile id it belongs to, and its value is that tile's score (nodata iff
    missing/uninhabited)."""
    df = _country_grid()
    path = write_grid_geotiff(df, "score", tmp_path / "s.tif", mask_col="inhabited")
    by_id = df.set_index("tile_id")
    with rasterio.open(path) as src:
        data, transform, (h, w) = src.read(1, masked=True), src.transform, (src.height, src.width)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel(), offset="center")
    seen = 0
    for r, c, xm, ym in zip(rows.ravel(), cols.ravel(), xs, ys):
        lon, lat = mercantile.lnglat(xm, ym)
        t = mercantile.tile(lon, lat, Z)
        tile = Tile(t.z, t.x, t.y)
        left, bottom, right, top = tile.bounds_3857()
        assert left < xm < right and bottom < ym < top
        assert tile == pixel_to_tile(path, r, c) if (r * w + c) % 97 == 0 else True
        if tile.tile_id in by_id.index and bool(by_id.at[tile.tile_id, "inhabited"]):
            assert not data.mask[r, c]
            assert float(data[r, c]) == np.float32(by_id.at[tile.tile_id, "score"])
            seen += 1
        else:
            assert data.mask[r, c], tile.tile_id
    assert seen == int(df["inhabited"].sum())
    # the asset check's vectorised version agrees, and catches a wrong pixel
    assert raster_matches_grid(path, df, "score", "inhabited") == {
        "pixels": h * w,
        "valued": seen,
        "mismatched": 0,
    }
    wrong = df.copy()
    wrong.loc[wrong["inhabited"].idxmax(), "score"] += 0.5
    assert raster_matches_grid(path, wrong, "score", "inhabited")["mismatched"] == 1


def test_every_raster_is_a_valid_cog_with_overviews(tmp_path):
    for n in (1, 7, 40, 300):
        df = _country_grid(n, seed=n)
        path = write_grid_geotiff(df, "score", tmp_path / f"s{n}.tif", mask_col="inhabited")
        valid, errors, _ = validate_cog(path)
        assert valid, (n, errors)
        with rasterio.open(path) as src:
            assert src.block_shapes[0] == (cog_blocksize(src.width, src.height),) * 2
            if n >= 40:
                assert src.overviews(1), n
    assert (
        cog_blocksize(40, 40) == 16
        and cog_blocksize(300, 200) == 128
        and cog_blocksize(5000, 10) == 256
    )


def test_failed_write_keeps_the_old_raster(tmp_path):
    good = write_grid_geotiff(_block_df(), "score", tmp_path / "s.tif")
    before = good.read_bytes()
    bad = _block_df()
    bad.loc[0, "score"] = -9999.0
    with pytest.raises(ValueError):
        write_grid_geotiff(bad, "score", good, nodata=-9999.0)
    assert good.read_bytes() == before and not list(tmp_path.glob(".*tmp*"))


def test_change_between_any_two_years(tmp_path):
    a, b = _country_grid(seed=1), _country_grid(seed=2)
    tif, png, ch = write_change_pair(a, b, 2016, 2019, tmp_path)
    assert tif.name == "change_2016_2019.tif" and png.is_file()
    both = a.merge(b, on=["z", "x", "y"], suffixes=("_a", "_b"))
    assert len(ch) == len(both)
    np.testing.assert_allclose(
        ch.sort_values(["y", "x"])["delta"],
        (both["score_b"] - both["score_a"]).to_numpy()[np.lexsort((both["x"], both["y"]))],
    )
    keep = both["inhabited_a"] | both["inhabited_b"]
    with rasterio.open(tif) as src:
        m = src.read(1, masked=True)
        x0, y0 = int(src.tags()["x0"]), int(src.tags()["y0"])
    for row in both.itertuples():
        v = m[row.y - y0, row.x - x0]
        if row.inhabited_a or row.inhabited_b:
            assert float(v) == pytest.approx(row.score_b - row.score_a, abs=1e-6)
        else:
            assert np.ma.is_masked(v)
    assert int((~m.mask).sum()) == int(keep.sum())
    assert validate_cog(tif)[0]
    with pytest.raises(ValueError, match="two different years"):
        write_change_pair(a, b, 2017, 2017, tmp_path)
    far = b.assign(x=b["x"] + 1000)
    with pytest.raises(ValueError, match="nothing to compare"):
        write_change_pair(a, far, 2016, 2017, tmp_path)


def test_change_between_without_habitation_keeps_every_shared_tile():
    a = _country_grid(seed=3).drop(columns="inhabited")
    ch = change_between(a, a.assign(score=a["score"] + 0.1))
    assert ch["inhabited_any"].all() and np.allclose(ch["delta"], 0.1)


def test_same_input_same_bytes(tmp_path):
    df = _country_grid(seed=4)
    p1 = write_grid_geotiff(df, "score", tmp_path / "a.tif", mask_col="inhabited")
    p2 = write_grid_geotiff(df, "score", tmp_path / "b.tif", mask_col="inhabited")
    assert p1.read_bytes() == p2.read_bytes()


def test_change_between_flags_changes_beyond_the_pairs_noise(tmp_path):
    a = _country_grid(seed=5).assign(inhabited=True)
    rng = np.random.default_rng(0)
    b = a.assign(score=a["score"] + rng.normal(0, 0.005, len(a)))
    b.loc[b.index[:3], "score"] += 0.4  # three places really changed
    tif, png, ch = write_change_pair(a, b, 2016, 2017, tmp_path)
    moved = ch["tile_id"].isin(a["tile_id"].iloc[:3]) if "tile_id" in ch else None
    assert ch["significant"].sum() >= 3
    if moved is not None:
        assert ch.loc[moved, "significant"].all()
    assert ch.loc[~ch["significant"], "delta"].abs().max() < 0.05
    assert (ch["delta_lo"] <= ch["delta"]).all() and (ch["delta"] <= ch["delta_hi"]).all()
    assert png.is_file()


def test_quicklook_of_a_large_grid_keeps_isolated_tiles(tmp_path):
    """400 x 400 tiles into a 600 x 500 px figure: nearest sampling dropped most single-tile
    towns; the figure grows to a pixel per tile instead."""
    from scipy import ndimage

    n = 400
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    df = pd.DataFrame({"z": 14, "x": 10000 + xs.ravel(), "y": 6000 + ys.ravel(), "score": 0.0})
    hot = np.random.default_rng(0).choice(len(df), 60, replace=False)
    df.loc[hot, "score"] = 1.0

    def yellow(frame, name):
        img = np.asarray(Image.open(write_quicklook_png(frame, "score", tmp_path / name)))
        img = img[..., :3].astype(int)
        return (img[..., 0] > 200) & (img[..., 1] > 200) & (img[..., 2] < 100)  # viridis(1)

    towns = yellow(df, "towns.png") & ~yellow(df.assign(score=0.0), "none.png")  # not the bar
    assert ndimage.label(towns)[1] == 60
