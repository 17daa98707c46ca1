"""Scenes for cloudy countries: the AOI's SCL, not the scene-level figure, decides; a scene over
``max_scene_cloud`` is read when those under it leave the AOI cloudy; and ``scene_choice: tile``
gives each zoom-14 tile its clearest scene of the season — on a monsoon catalogue (STAC double,
local COGs) where no single scene is clear."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_bounds, from_origin
from rasterio.warp import transform_bounds
from shapely.geometry import MultiPolygon, box, mapping

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac import granule_patches, ingest, selection, warp
from siscore_assets.core.imagery.stac.config import load_aoi, parse_stac_source
from siscore_assets.core.imagery.stac.remote import Signer
from siscore_assets.core.imagery.stac.search import Scene
from siscore_assets.core.imagery.stac.selection import (
    TILE_COLUMNS,
    select_scenes,
    tile_shares,
)
from siscore_assets.core.maps import mosaic_files
from siscore_assets_tests.core.imagery.stac.cloudy import (
    AOI_BBOX,
    GRANULE,
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
    assert_overlay_covers_every_tile(ingest.plans_for(again, 14), sel_t, tmp_path / "overlay")

    # Granule patches cut one scene per granule: the one clearest for most tiles.
    signer = Signer(tile_cfg.sign, tile_cfg.resign_after_s)
    grids = {s.item_id: granule_patches.granule_grid(s, tile_cfg, signer) for s in sel_t.chosen}
    patch_plans = granule_patches.plan_patches(list(sel_t.chosen), grids, load_aoi(tile_cfg), 4, 64)
    assert len({p.tile_id for p in patch_plans}) == len(patch_plans) > 0
    most = record["item_id"].value_counts()
    (used,) = {p.scene.item_id for p in patch_plans}
    assert most[used] == most.max()


def assert_overlay_covers_every_tile(plans, sel, folder) -> None:
    """The granule's siScore overlay (one file per `granules` row) spans all its tiles, though
    the per-tile choice reads them from several of its scenes."""
    granules = warp.granule_rows(plans, list(sel.chosen), 64)
    assert granules["granule_id"].tolist() == [GRANULE]
    assert granules["item_id"].iloc[0] == sel.chosen[0].item_id  # the most tiles' scene
    grid = pd.DataFrame(
        [{"x": p.tile.x, "y": p.tile.y, "score": 1.0, "inhabited": True} for p in plans]
    )
    blocks = mosaic_files.grid_granules(grid, granules, False, 64)
    out = mosaic_files.write_mosaics(
        grid, blocks, zoom=14, folder=folder, backend="numpy", country="MON", year=YEAR
    )
    with rasterio.open(out.table["path"].iloc[0]) as ds:
        scored = int(np.isfinite(ds.read(1)).sum()) // (64 * 64)
    assert scored == len(plans) == 35


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


def _halves(tile: Tile) -> tuple[dict, dict]:
    """GeoJSON footprints holding a tile's west and east half (reaching past its other sides)."""
    w, s, e, n = tile.bounds_lonlat()
    mid = (w + e) / 2
    west = box(w - 0.01, s - 0.01, mid, n + 0.01)
    return mapping(west), mapping(box(mid, s - 0.01, e + 0.01, n + 0.01))


@pytest.mark.parametrize("short_data", [False, True])
def test_a_tile_split_between_two_swaths_is_done_once_clear_halves_cover_it(short_data):
    """Two granules' scenes hold one half of a tile each, so no scene can leave it clear and the
    rule of one scene's unusable share read every candidate; now the first round's scenes, clear
    over their halves, end the reading.  A scene with data over less of the tile than its
    footprint claims (``short_data``: a fifth of its half) does not count, so reading goes on."""
    tile = Tile(14, 13925, 6318)
    west, east = _halves(tile)
    scenes = [
        Scene(f"{side}{i}", g, f"2022-07-{10 + i:02d}", 5.0 + i, 32652, fp, {"SCL": "x"}, None, 0)
        for side, g, fp in (("w", "52SBC", west), ("e", "52SBD", east))
        for i in range(3)
    ]
    calls = []

    def measure_tiles(s, tiles):
        calls.append(s.item_id)
        short = short_data and s.item_id in ("w0", "w1")
        return {t.tile_id: (0.0, 0.9 if short else 0.5) for t in tiles}

    cfg = _fake_cfg(scl_candidates=2)
    choice = selection.select_tiles(scenes, [tile], cfg, YEAR, measure_tiles)
    if short_data:
        assert sorted(calls) == ["e0", "e1", "e2", "w0", "w1", "w2"]  # as before
    else:
        assert calls == ["w0", "w1", "e0", "e1"]  # was all six
        assert set(choice.order[tile.tile_id]) == {"e0", "w0"}  # one scene of each half


def test_a_per_tile_choice_is_made_and_read_at_the_countrys_zoom(monsoon_api, tmp_path):
    """At zoom 15 every tile has its scenes; read at another zoom than chosen at, the plan is
    refused (its tile ids would match none: a year of blank tiles)."""
    cfg = _cfg(monsoon_api, scene_choice="tile")
    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR, z=15)
    path = tmp_path / "stac_selection.json"
    ingest.save_selection(sel, path)
    again = ingest.load_selection(path)
    plans = ingest.plans_for(again, 15)
    assert len(plans) > 35 and all(p.scenes for p in plans)
    with pytest.raises(ValueError, match="made at zoom 15, but its tiles are read at zoom 14"):
        ingest.plans_for(again, 14)


def test_a_granule_choice_removes_the_per_tile_record_of_an_earlier_tile_choice(tmp_path):
    path = tmp_path / "stac_selection.json"
    aoi = mapping(box(*AOI_BBOX))
    row = dict.fromkeys(TILE_COLUMNS, 0)
    ingest.save_selection(ingest.Selection(YEAR, aoi, (), (), {"14/1/2": ()}, (row,)), path)
    assert ingest.tile_record_path(path).is_file()
    ingest.save_selection(ingest.Selection(YEAR, aoi, (), ()), path)  # scene_choice: granule
    assert not ingest.tile_record_path(path).exists()


@pytest.mark.parametrize(
    "edge_shares, full_shares",
    [((0.20, 0.75), (0.90, 0.0)), ((0.50, 0.60), (1.0, 0.0))],  # 20 % vs 10 %, 20 % vs 0 % clear
)
def test_the_scene_with_more_clear_aoi_pixels_wins_and_is_never_skipped(edge_shares, full_shares):
    """A swath-edge scene (no-data and cloud) against a full but cloudier one: ranked on the
    unusable share 1 - (1 - no-data) x (1 - cloud), the one with more clear pixels is chosen."""
    scenes = [_scene(0, 30.0), _scene(1, 20.0)]  # s0: the full orbit, s1: the swath edge
    shares = {"s0": full_shares, "s1": edge_shares}
    rows, chosen, skipped = select_scenes(scenes, _fake_cfg(), YEAR, lambda s: shares[s.item_id])
    assert [s.item_id for s in chosen] == ["s1"] and not skipped
    by_item = {r["item_id"]: r for r in rows}
    assert by_item["s1"]["unusable_share"] == 0.8
    assert all(0 <= r["unusable_share"] <= 1 for r in rows)


def test_a_granule_is_skipped_only_when_no_measured_scene_has_a_clear_aoi_pixel():
    scenes = [_scene(0, 30.0), _scene(1, 20.0)]
    shares = {"s0": (1.0, 0.0), "s1": (0.0, 1.0)}
    rows, chosen, skipped = select_scenes(scenes, _fake_cfg(), YEAR, lambda s: shares[s.item_id])
    assert not chosen
    assert skipped == [
        "granule 48QUJ: none of the 2 measured has over 0.5% of the AOI clear (best 0.0%)"
    ]


def test_scenes_whose_footprint_misses_the_aoi_are_not_read(monkeypatch):
    """Two islands: the search (their convex hull) also finds a granule of the sea between them;
    its scenes are left out before any SCL read, and said so, not reported as cloud."""
    islands = MultiPolygon([box(100.0, 10.0, 100.1, 10.1), box(101.0, 10.0, 101.1, 10.1)])
    land = mapping(box(99.9, 9.9, 100.2, 10.2))
    sea = mapping(box(100.4, 9.95, 100.7, 10.15))  # in the hull, not the AOI

    def scene(i: int, granule: str, footprint: dict) -> Scene:
        day = f"2022-07-{1 + i:02d}"
        return Scene(f"s{i}", granule, day, 5.0 + i, 32647, footprint, {"SCL": "x"}, None, 0)

    scenes = [scene(0, "47PQA", land)] + [scene(i, "47PSE", sea) for i in range(1, 4)]
    monkeypatch.setattr(ingest, "search_scenes", lambda cfg, aoi, year: (scenes, []))
    reads = []

    def measure(s, aoi, cfg, signer):  # as measure_scl: no pixel of the AOI is all no-data
        reads.append(s.item_id)
        return (0.0, 0.0) if s.shape.intersects(aoi) else (0.0, 1.0)

    monkeypatch.setattr(ingest, "measure_scl", measure)
    table, sel = ingest.select_year(_fake_cfg(bbox=[100, 10, 101.1, 10.1]), islands, YEAR)
    assert reads == ["s0"] and [s.item_id for s in sel.chosen] == ["s0"]
    assert list(sel.skipped) == [
        "granule 47PSE: 3 scene(s) whose footprint misses the AOI (found by its convex hull), "
        "not read"
    ]


def _high_latitude_scl(tmp_path) -> tuple[list[Tile], Scene]:
    """Six zoom-14 tiles at ~15.0 E, 60.1 N and a scene whose clear SCL (UTM 33N) covers them."""
    tiles = [Tile(14, 8874 + i, 4748 + j) for i in range(3) for j in range(2)]
    crs = "EPSG:32633"
    left, bottom, right, top = transform_bounds("EPSG:3857", crs, *_span(tiles))
    tf = from_origin(round(left) - 200, round(top) + 200, 10, 10)
    w, h = int((right - left + 400) // 10), int((top - bottom + 400) // 10)
    path = tmp_path / "SCL.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8", crs=crs, transform=tf
    ) as dst:
        dst.write(np.full((h, w), 4, np.uint8), 1)
    return tiles, Scene("s0", "33VWG", "2022-07-01", 5.0, 32633, {}, {"SCL": str(path)}, None, 0)


class _Spy:
    """An opened SCL whose reads are recorded (window width, decimated width); the first
    ``fail`` reads of all spies sharing ``reads`` raise, as a flaky server's would."""

    def __init__(self, ds, reads: list, fail: int = 0) -> None:
        self.ds, self.reads, self.fail = ds, reads, fail

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.ds.close()

    def __getattr__(self, name):
        return getattr(self.ds, name)

    def read(self, *args, window, out_shape):
        self.reads.append((window.width, out_shape[1]))
        if len(self.reads) <= self.fail:
            raise OSError("HTTP 503")
        return self.ds.read(*args, window=window, out_shape=out_shape)


def test_scl_is_sampled_at_about_16_pixels_per_tile_side_at_high_latitude(tmp_path, monkeypatch):
    """At 60 deg N a zoom-14 tile spans 2,446 EPSG:3857 metres but 1,223 m of ground: the read is
    decimated by the tile's width in the SCL's own CRS, not by its 3857 width."""
    tiles, scene = _high_latitude_scl(tmp_path)
    reads = []
    monkeypatch.setattr(
        selection, "open_remote", lambda href, fresh=False: _Spy(rasterio.open(href), reads)
    )
    got = selection.measure_scl_tiles(scene, tiles, _fake_cfg(), Signer())
    assert got == {t.tile_id: (0.0, 0.0) for t in tiles}
    ((native, decimated),) = reads
    ground = 2 * np.pi * 6378137 / 2**14 * np.cos(np.radians(60.1))  # a tile's width, metres
    per_tile = decimated / (native * 10 / ground)  # decimated pixels per tile side
    assert selection.SCL_TILE_POINTS * 0.9 <= per_tile <= selection.SCL_TILE_POINTS * 1.2


def test_a_retried_scl_read_measures_the_tiles_width_once(tmp_path, monkeypatch):
    """The tiles' width in the SCL's CRS (a reprojection of every tile) is the same on every
    attempt of a flaky read: computed once, and the retry decimates the same."""
    tiles, scene = _high_latitude_scl(tmp_path)
    reads, widths = [], []
    monkeypatch.setattr(
        selection,
        "open_remote",
        lambda href, fresh=False: _Spy(rasterio.open(href), reads, fail=2),
    )
    width = selection.tile_width
    monkeypatch.setattr(
        selection, "tile_width", lambda ts, crs: widths.append(crs) or width(ts, crs)
    )
    cfg = _fake_cfg(retries=3, backoff_s=0.0)
    got = selection.measure_scl_tiles(scene, tiles, cfg, Signer())
    assert got == {t.tile_id: (0.0, 0.0) for t in tiles}
    assert len(reads) == 3 and len(set(reads)) == 1  # two failed attempts, then the read
    assert len(widths) == 1


def _span(tiles: list[Tile]) -> tuple[float, float, float, float]:
    b = np.array([t.bounds_3857() for t in tiles])
    return b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
