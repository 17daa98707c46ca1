"""Scenes for cloudy countries: the AOI's SCL, not the scene-level figure, decides; a scene over
``max_scene_cloud`` is read when those under it leave the AOI cloudy; and ``scene_choice: tile``
gives each zoom-14 tile its clearest scene of the season — on a monsoon catalogue (STAC double,
local COGs) where no single scene is clear."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_bounds

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac import granule_patches, ingest
from siscore_assets.core.imagery.stac.config import load_aoi, parse_stac_source
from siscore_assets.core.imagery.stac.remote import Signer
from siscore_assets.core.imagery.stac.search import Scene
from siscore_assets.core.imagery.stac.selection import (
    TILE_COLUMNS,
    select_scenes,
    tile_shares,
)
from siscore_assets_tests.core.imagery.stac.cloudy import (
    SCENES,
    YEAR,
    cloudy_source,
    write_cloudy_catalogue,
)
from siscore_assets_tests.core.imagery.stac.double import StacDouble

PLACEHOLDER = "http://stac.invalid"


@pytest.fixture(scope="module")
def monsoon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monsoon_cogs")
    return folder, write_cloudy_catalogue(folder, PLACEHOLDER)


@pytest.fixture
def monsoon_api(monsoon):
    folder, items = monsoon
    with StacDouble(folder) as double:
        double.items = [
            {
                **it,
                "assets": {
                    k: {**a, "href": a["href"].replace(PLACEHOLDER, double.url)}
                    for k, a in it["assets"].items()
                },
            }
            for it in items
        ]
        yield double


def _cfg(api, **over):
    return parse_stac_source(cloudy_source(api.url, **over), "test countries file: country MON")


def _read(cfg, sel, tmp_path) -> pd.DataFrame:
    index, _, _ = ingest.read_year(cfg, sel, 14, tmp_path / "cache", max_cloud=0.15)
    return index


def test_no_single_scene_is_clear_yet_every_tile_is_with_per_tile_choice(monsoon_api, tmp_path):
    assert min(cloud for _, cloud in SCENES.values()) > 50.0  # the old rule rejected them all
    granule_cfg = _cfg(monsoon_api)
    table, sel = ingest.select_year(granule_cfg, load_aoi(granule_cfg), YEAR)
    assert len(sel.chosen) == 1
    assert table["unusable_share"].min() >= 0.5  # no scene is clear over the AOI
    chosen = table[table["chosen"]].iloc[0]
    assert "over the limit 50.0%" in chosen["reason"]
    by_granule = _read(granule_cfg, sel, tmp_path / "g")

    tile_cfg = _cfg(monsoon_api, scene_choice="tile")
    table_t, sel_t = ingest.select_year(tile_cfg, load_aoi(tile_cfg), YEAR)
    record = pd.DataFrame(list(sel_t.tile_rows))
    assert list(record.columns) == TILE_COLUMNS
    assert set(record["tile_id"]) == set(by_granule["tile_id"])  # one record per AOI tile
    assert record["unusable_share"].mean() < 0.1
    assert record["item_id"].nunique() >= 3  # different tiles, different dates
    assert (table_t["status"] == "chosen").sum() == record["item_id"].nunique()
    by_tile = _read(tile_cfg, sel_t, tmp_path / "t")
    ok_granule = (by_granule["status"] == "ok").mean()
    ok_tile = (by_tile["status"] == "ok").mean()
    assert ok_granule < 0.5 and ok_tile == 1.0

    # The per-tile choice is kept: selection file + per-tile record, read back the same.
    path = tmp_path / "sel" / "stac_selection.json"
    ingest.save_selection(sel_t, path)
    again = ingest.load_selection(path)
    assert again.tile_scenes == sel_t.tile_scenes
    saved = pd.read_csv(ingest.tile_record_path(path))
    assert saved["tile_id"].tolist() == record["tile_id"].tolist()
    plans = {p.tile.tile_id: [s.item_id for s in p.scenes] for p in ingest.plans_for(again, 14)}
    assert all(plans[t] == list(sel_t.tile_scenes[t]) for t in sel_t.tile_scenes)

    # Granule patches cut one scene per granule: the one clearest for most tiles.
    signer = Signer(tile_cfg.sign, tile_cfg.resign_after_s)
    grids = {s.item_id: granule_patches.granule_grid(s, tile_cfg, signer) for s in sel_t.chosen}
    patch_plans = granule_patches.plan_patches(list(sel_t.chosen), grids, load_aoi(tile_cfg), 4, 64)
    assert len({p.tile_id for p in patch_plans}) == len(patch_plans) > 0
    most = record["item_id"].value_counts()
    (used,) = {p.scene.item_id for p in patch_plans}
    assert most[used] == most.max()


def test_tile_shares_sample_each_tile():
    tiles = [Tile(14, 13990, 6259), Tile(14, 13991, 6259)]
    left, _, _, top = tiles[0].bounds_3857()
    right, bottom = tiles[1].bounds_3857()[2], tiles[1].bounds_3857()[1]
    scl = np.full((32, 64), 4, np.uint8)
    scl[:, 32:48] = 9  # the left half of the second tile is cloud
    scl[:, 48:] = 0  # its right half has no data
    got = tile_shares(scl, from_bounds(left, bottom, right, top, 64, 32), "EPSG:3857", tiles, 8)
    np.testing.assert_allclose(got, [[0.0, 0.0], [1.0, 0.5]])
    outside = tile_shares(scl, from_bounds(0, 0, 10, 10, 64, 32), "EPSG:3857", tiles[:1], 8)
    np.testing.assert_allclose(outside, [[0.0, 1.0]])  # off the raster: no data


def _scene(i: int, cloud: float, granule: str = "48QUJ") -> Scene:
    return Scene(
        f"s{i}", granule, f"2022-07-{1 + i:02d}", cloud, 32648, {}, {"SCL": "x"}, "03.01", 0
    )


def _fake_cfg(**over):
    block = {"kind": "stac", "api": "http://x", "bbox": [100, 20, 101, 21], "threads": 1}
    return parse_stac_source({**block, **over}, "t")


def test_a_clear_season_reads_no_more_scenes_than_before():
    scenes = [_scene(i, 5.0 + i) for i in range(8)]
    calls = []

    def measure(s):
        calls.append(s.item_id)
        return (0.0, 0.0)

    rows, chosen, skipped = select_scenes(scenes, _fake_cfg(), YEAR, measure)
    assert sorted(calls) == ["s0", "s1", "s2", "s3"]  # scl_candidates, as before
    assert [s.item_id for s in chosen] == ["s1"] and not skipped  # tie: 2 July is mid-year
    assert {r["status"] for r in rows if r["item_id"] in {"s4", "s5"}} == {"not measured"}


def test_a_clear_aoi_under_a_cloudy_granule_is_found():
    """The 59.8 %-cloud granule over a clear lake: under-limit scenes leave the AOI cloudy, so
    the scenes over the limit are read and the clear one wins; the cap bounds the reads."""
    scenes = [_scene(i, 10.0 + i) for i in range(3)] + [_scene(3, 59.8), _scene(4, 90.0)]
    shares = {"s0": (0.9, 0.0), "s1": (0.8, 0.0), "s2": (0.95, 0.0), "s3": (0.0, 0.0)}
    calls = []

    def measure(s):
        calls.append(s.item_id)
        return shares.get(s.item_id, (1.0, 0.0))

    rows, chosen, _ = select_scenes(scenes, _fake_cfg(scl_candidates=2), YEAR, measure)
    assert [s.item_id for s in chosen] == ["s3"]
    assert calls == ["s0", "s1", "s2", "s3"]  # s4 (90 %) was not needed
    by_item = {r["item_id"]: r for r in rows}
    assert "59.8% is over the limit" in by_item["s3"]["reason"]
    assert by_item["s4"]["status"] == "rejected" and "not needed" in by_item["s4"]["reason"]
    calls.clear()
    capped = _fake_cfg(scl_candidates=1, scl_max_candidates=2)
    rows, chosen, _ = select_scenes(scenes, capped, YEAR, measure)
    assert calls == ["s0", "s1"] and [s.item_id for s in chosen] == ["s1"]
    assert "scl_max_candidates 2" in {r["item_id"]: r for r in rows}["s3"]["reason"]
