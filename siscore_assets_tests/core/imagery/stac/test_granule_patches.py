"""Granule patching (the reproduction's alternative to the grid): ids ``granule/row/col``, each
patch a window of the granule's own pixel grid in its UTM CRS, pixel for pixel the source COG's
(harmonised), cloudy and half-blank scenes reported, a rerun resumes from the cache."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.imagery.stac import granule_patches as gp
from siscore_assets.core.imagery.stac import ingest
from siscore_assets.core.imagery.stac.config import load_aoi, parse_stac_source
from siscore_assets.core.imagery.stac.search import search_scenes
from siscore_assets.core.imagery.stac.warp import stretch
from siscore_assets.core.storage.tile_store import open_stack
from siscore_assets_tests.core.imagery.stac.double import (
    BANDS,
    PIXEL_M,
    YEAR,
    scene_geometry,
    source_block,
    true_dn,
)

PER_SIDE, PX = 4, 32


@pytest.fixture
def gcfg(api):
    return parse_stac_source(
        source_block(api.url, granule_patches={"per_side": PER_SIDE, "px": PX}), "test: STC"
    )


def _scenes(cfg, aoi) -> dict:
    scenes, _ = search_scenes(cfg, aoi, YEAR)
    return {s.item_id: s for s in scenes}


def test_patch_ids_round_trip_and_bad_ids_are_refused():
    assert gp.parse_patch_id(gp.patch_id("52SDG", 3, 17)) == ("52SDG", 3, 17)
    for bad in ("52SDG/3", "52SDG/a/1", "/1/2", "14/13926/6318/1"):
        with pytest.raises(ValueError, match="granule/row/col"):
            gp.parse_patch_id(bad)


def test_patches_are_source_pixels_in_the_granule_utm_grid(api, gcfg, tmp_path):
    """Each usable patch pixel equals the stretched, harmonised DN of the source pixel at
    (row * px + r, col * px + c) of its granule (no resampling); bounds are that window's, in the
    granule's UTM zone; the baseline-04.00 scene (+1000 in its pixels) reads harmonised."""
    aoi = load_aoi(gcfg)
    _, sel = ingest.select_year(gcfg, aoi, YEAR)
    index, store, stats = gp.read_granule_patches(
        gcfg, list(sel.chosen), aoi, tmp_path / "cache", tmp_path / "store", max_cloud=0.15
    )
    assert stats["patches_read"] == len(index) and stats["granules"] == 2
    assert set(index["granule_id"]) == {"51SZH", "52SBC"}
    assert set(index["epsg"]) == {32651, 32652}
    assert index["tile_id"].is_unique
    ok = index[index["status"] == "ok"]
    assert len(ok) >= 4 and set(ok["item_id"]) == {"51_clear", "52_b0400"}
    stack = open_stack(store.folder)
    rows, cols = np.mgrid[0:PX, 0:PX]
    for rec in ok.itertuples(index=False):
        tf, _, _ = scene_geometry(rec.item_id)
        assert (rec.left, rec.top) == (tf.c + rec.col * PX * PIXEL_M, tf.f - rec.row * PX * PIXEL_M)
        assert (rec.right - rec.left, rec.top - rec.bottom) == (PX * PIXEL_M, PX * PIXEL_M)
        got = stack[int(rec.image_row)]
        for b, band in enumerate(BANDS):
            dn = true_dn(rec.item_id, band, rec.row * PX + rows, rec.col * PX + cols)
            want, _ = stretch(dn, 0, gcfg.stretch_max)
            np.testing.assert_array_equal(got[..., b], want, err_msg=f"{rec.tile_id} {band}")


def test_cloudy_and_half_blank_scenes_are_reported_not_stored(api, tmp_path):
    gcfg = parse_stac_source(
        source_block(
            api.url,
            bbox=[125.96, 37.98, 126.04, 38.04],  # whole granules
            granule_patches={"per_side": PER_SIDE, "px": PX},
        ),
        "test: STC",
    )
    aoi = load_aoi(gcfg)
    scenes = _scenes(gcfg, aoi)
    cloudy, _, _ = gp.read_granule_patches(
        gcfg, [scenes["51_cloudy"]], aoi, tmp_path / "c1", tmp_path / "s1", max_cloud=0.15
    )
    assert len(cloudy) and set(cloudy["status"]) == {"cloudy"} and (cloudy["image_row"] == -1).all()
    assert cloudy["problem"].str.startswith("SCL cloud").all()
    half, store, _ = gp.read_granule_patches(
        gcfg, [scenes["51_halfblank"]], aoi, tmp_path / "c2", tmp_path / "s2", max_cloud=0.15
    )
    _, width, _ = scene_geometry("51_halfblank")
    east = (
        half["col"] * PX >= width // 2 - PX // 2
    )  # more than half of the patch past the no-data edge
    assert (half.loc[east, "status"] == "blank").all() and east.any()
    assert (half.loc[~east, "status"] == "ok").all() and (~east).any()
    assert len(store) == int((~east).sum())


def test_a_rerun_reads_nothing_and_a_partial_cache_resumes_to_the_same_store(api, gcfg, tmp_path):
    aoi = load_aoi(gcfg)
    _, sel = ingest.select_year(gcfg, aoi, YEAR)
    args = (gcfg, list(sel.chosen), aoi, tmp_path / "cache")
    first, store, _ = gp.read_granule_patches(*args, tmp_path / "a", max_cloud=0.15)
    before = open_stack(store.folder)[np.arange(len(store))].copy()
    api.requests.clear()
    again, _, stats = gp.read_granule_patches(*args, tmp_path / "b", max_cloud=0.15)
    assert stats["patches_read"] == 0 and stats["patches_cached"] == len(first)
    assert not [r for r in api.cog_requests() if "B0" in r]  # only each scene's grid is looked up
    records = sorted((tmp_path / "cache").glob("*/*.npy"))
    for rec in records[::2]:  # as if killed with half the patches written
        rec.unlink()
    resumed, store3, stats = gp.read_granule_patches(*args, tmp_path / "c", max_cloud=0.15)
    assert stats["patches_read"] == len(records[::2])
    assert resumed.equals(first)
    np.testing.assert_array_equal(open_stack(store3.folder)[np.arange(len(store3))], before)


def test_granule_extent_spans_the_patches_from_the_granule_corner():
    import pandas as pd

    rows = pd.DataFrame(
        {
            "row": [1, 2],
            "col": [3, 0],
            "left": [130.0, 100.0],
            "right": [140.0, 110.0],
            "top": [990.0, 980.0],
            "bottom": [980.0, 970.0],
        }
    )
    (left, bottom, right, top), nx, ny = gp.granule_extent(rows)
    assert (left, top, nx, ny) == (100.0, 1000.0, 4, 3)
    assert (right, bottom) == (140.0, 970.0)
