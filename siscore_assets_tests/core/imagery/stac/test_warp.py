"""Reads onto the grid: a tile pixel equals the source COG's pixel at the same ground point
(exact tile bounds), on both sides of the UTM 51N / 52N boundary; baseline 04.00 harmonised;
a COG that fails twice still reads; signed URLs are renewed before they expire."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac import ingest, records
from siscore_assets.core.imagery.stac.config import load_aoi
from siscore_assets.core.imagery.stac.records import TooManyUnreadable
from siscore_assets.core.imagery.stac.remote import RetriesExhausted, Signer
from siscore_assets.core.imagery.stac.warp import CLOUD_BIT, record_path, stretch
from siscore_assets_tests.core.imagery.stac.double import (
    BANDS,
    SCENES,
    YEAR,
    scene_geometry,
    true_dn,
)

BOUNDARY_TILE = Tile(14, 13926, 6318)  # spans 125.991..126.013 E: both UTM zones


@pytest.fixture
def ingested(api, cfg, tmp_path):
    table, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    index, stack, stats = ingest.read_year(cfg, sel, 14, tmp_path / "cache", max_cloud=0.15)
    return sel, index, stack, stats, tmp_path / "cache"


def test_pixels_equal_source_cog_across_the_utm_boundary(ingested, catalogue):
    """Every sampled pixel of the boundary tile equals the stretched, harmonised value of the
    source COG pixel under its centre (transformed 3857 -> the scene's UTM zone), taken from the
    first scene of the mosaic order that covers it; pixels within 0.25 px of a source pixel edge
    are skipped as ambiguous."""
    sel, index, stack, _, cache = ingested
    folder, _ = catalogue
    row = index.set_index("tile_id").loc[BOUNDARY_TILE.tile_id]
    assert row["status"] == "ok" and row["scenes"] == "52_b0400;51_clear"  # least cloud first
    tile = stack[int(row["image_row"])]
    left, bottom, right, top = BOUNDARY_TILE.bounds_3857()
    assert (row["left"], row["bottom"], row["right"], row["top"]) == (left, bottom, right, top)
    order = ("52_b0400", "51_clear")
    raw = {}
    for scene in order:
        for band in BANDS:
            with rasterio.open(folder / f"{scene}_{band}.tif") as src:
                raw[scene, band] = src.read(1)
    to_utm = {s: Transformer.from_crs(3857, SCENES[s][1], always_xy=True) for s in order}
    res = (right - left) / 256
    seen = dict.fromkeys(order, 0)
    for r in range(3, 256, 5):
        for c in range(2, 256, 5):
            x, y = left + (c + 0.5) * res, top - (r + 0.5) * res
            for scene in order:
                tf, w, h = scene_geometry(scene)
                ux, uy = to_utm[scene].transform(x, y)
                col, rw = (ux - tf.c) / tf.a, (uy - tf.f) / tf.e
                if not (0 <= col < w and 0 <= rw < h):
                    continue  # not in this scene: the next one fills the pixel
                if min(col % 1, 1 - col % 1, rw % 1, 1 - rw % 1) < 0.25:
                    break
                offset = 1000 if scene == "52_b0400" else 0
                for b, band in enumerate(BANDS):
                    value = int(raw[scene, band][int(rw), int(col)])
                    assert value - offset == int(
                        true_dn(scene, band, np.array(int(rw)), np.array(int(col)))
                    )
                    assert tile[r, c, b] == stretch(np.array([value]), offset, 3000)[0][0], (
                        r,
                        c,
                        band,
                        scene,
                    )
                seen[scene] += 1
                break
    assert min(seen.values()) > 100, seen  # both UTM zones checked in the one tile


def test_baseline_0400_scene_is_harmonised(ingested):
    """52_b0400 stores DN + 1000; after harmonising its tiles sit on the same scale as the
    true reflectance (a pure 52-zone tile: mean equals the stretched true DN's mean)."""
    sel, index, stack, _, cache = ingested
    row = index.set_index("tile_id").loc["14/13927/6318"]
    assert row["scenes"] == "52_b0400"
    rec = np.load(record_path(next(cache.iterdir()), Tile(14, 13927, 6318)))
    assert set(np.unique(rec[..., -1])) <= {0, 1}  # one scene, never cloud
    scene = next(s for s in sel.chosen if s.item_id == "52_b0400")
    assert scene.offset == 1000
    tf, w, h = scene_geometry("52_b0400")
    rows, cols = np.mgrid[0:h, 0:w]
    raw_mean = stretch(true_dn("52_b0400", "B04", rows, cols) + 1000, 0, 3000)[0].mean()
    true_mean = stretch(true_dn("52_b0400", "B04", rows, cols), 0, 3000)[0].mean()
    got = stack[int(row["image_row"])][..., 0][rec[..., -1] > 0].mean()  # pixels with data
    assert abs(got - true_mean) < 4 and abs(got - raw_mean) > 15


def test_failing_cog_read_after_retries(ingested, api):
    hits = [r for r in api.requests if "52_b0400_B04.tif" in r]
    assert api.failing["52_b0400_B04.tif"] == 0 and len(hits) > 2  # two 500s, then reads


def test_every_aoi_tile_indexed_once(ingested):
    _, index, stack, stats, _ = ingested
    assert index["tile_id"].is_unique and len(index) == 6
    assert (index["status"] == "ok").all() and len(stack) == 6 and stack.dtype == np.uint8
    assert stats == {"tiles_read": 6, "tiles_cached": 0, "tiles_without_scene": 0}


def test_b08_kept_in_the_tile_cache_stack_stays_rgb(ingested, api, cfg, tmp_path):
    sel, index, stack, _, _ = ingested
    nir = cfg.model_copy(update=dict(bands=(*cfg.bands, "B08")))
    _, sel4 = ingest.select_year(nir, load_aoi(nir), YEAR)
    index4, stack4, _ = ingest.read_year(nir, sel4, 14, tmp_path / "nir", max_cloud=0.15)
    assert np.array_equal(stack4, stack) and index4.equals(index)
    rec = np.load(record_path(next((tmp_path / "nir").iterdir()), BOUNDARY_TILE))
    assert rec.shape == (256, 256, 5) and rec[..., 3].std() > 10


def test_reads_use_signed_urls_renewed_when_old(api, cfg, tmp_path):
    """A signer whose URLs are 'valid' for 2 clock ticks: every COG request carries a signature
    and long reads get fresh ones (the clock advances on every href asked for)."""
    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    ticks = [0.0]

    def clock() -> float:
        ticks[0] += 1
        return ticks[0]

    signer = Signer(ttl_s=2, sign=lambda h: f"{h}?sig={ticks[0]:.0f}", clock=clock)
    before = len(api.cog_requests())
    index, _, _ = ingest.read_year(cfg, sel, 14, tmp_path / "signed", max_cloud=0.15, signer=signer)
    reqs = api.cog_requests()[before:]
    assert reqs and all("?sig=" in r for r in reqs) and (index["status"] == "ok").all()
    hrefs = {h for s in sel.chosen for h in s.hrefs.values()}
    assert signer.signed > len(hrefs)  # re-signed, not signed once per href
    assert len({r.split("?sig=")[1] for r in reqs}) > 1


def test_cog_that_keeps_failing_names_tile_and_file_and_indexes_nothing(api, cfg, tmp_path):
    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    api.failing["51_clear_B04.tif"] = 10_000
    one = cfg.model_copy(update=dict(threads=1))
    with pytest.raises(
        RetriesExhausted,
        match=r"tile 14/13925/6318 from 51_clear: failed after 4 attempt\(s\): "
        r"http://127\.0\.0\.1:\d+/cogs/51_clear_B04\.tif: HTTP response code: 500",
    ):
        ingest.read_year(one, sel, 14, tmp_path / "cache", max_cloud=0.15)
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert all(not p.name.startswith(".") for p in left)  # finished tiles only, kept for a resume


def test_stretch_is_linear_and_keeps_nodata():
    v, ok = stretch(np.array([0, 1, 1000, 1500, 2500, 4000, 65535]), 1000, 3000)
    assert ok.tolist() == [False, True, True, True, True, True, True]
    assert v.tolist() == [0, 0, 0, 43, 128, 255, 255]


def test_signer_resigns_before_expiry():
    now = [0.0]
    signer = Signer(ttl_s=1800, sign=lambda h: f"{h}?sig={now[0]}", clock=lambda: now[0])
    assert signer.href("https://x/a.tif") == "https://x/a.tif?sig=0.0"
    now[0] = 1000
    assert signer.href("https://x/a.tif") == "https://x/a.tif?sig=0.0"
    now[0] = 1801
    assert signer.href("https://x/a.tif") == "https://x/a.tif?sig=1801" and signer.signed == 2
    assert Signer().href("https://x/a.tif") == "https://x/a.tif"


def test_cloud_bit_marks_cloudy_fill():
    assert CLOUD_BIT == 128


def test_an_asset_that_never_reads_costs_only_its_tiles(api, cfg, tmp_path, monkeypatch):
    """A withdrawn band (HTTP 404 after every retry) of one chosen scene: its tiles are read from
    their next scene where they have one, else reported corrupt with the href and the error,
    never stored; the year fails only when more than MAX_FAILED_SHARE of its tiles are lost."""
    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    gone = tuple(
        dataclasses.replace(s, hrefs={**s.hrefs, "B03": s.hrefs["B03"].replace("52_b0", "withd")})
        for s in sel.chosen
    )
    withdrawn = dataclasses.replace(sel, chosen=gone)  # 52_b0400's B03: HTTP 404
    monkeypatch.setattr(records, "MAX_FAILED_SHARE", 0.5)
    index, stack, _ = ingest.read_year(cfg, withdrawn, 14, tmp_path / "cache", max_cloud=0.15)
    lost = index[index["x"] == 13927]  # 52_b0400 alone covers these
    assert (lost["status"] == "corrupt").all() and (lost["image_row"] == -1).all()
    assert lost["problem"].str.contains(r"/cogs/withd400_B03\.tif: .*HTTP response code: 404").all()
    rest = index[index["x"] != 13927]
    assert rest["scenes"].eq("51_clear").all() and (rest["status"] == "ok").any()
    assert len(stack) == (index["status"] == "ok").sum()
    asked = sum("withd400_B03" in r for r in api.requests)  # one round of retries per thread,
    assert 0 < asked <= cfg.threads * (cfg.retries + 1)  # not one per tile it covers

    monkeypatch.setattr(records, "MAX_FAILED_SHARE", 0.05)  # 2 of 6 tiles: too many
    with pytest.raises(TooManyUnreadable, match=r"of 6 record\(s\) unreadable.*withd400_B03"):
        ingest.read_year(cfg, withdrawn, 14, tmp_path / "again", max_cloud=0.15)
