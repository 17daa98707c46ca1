"""Search through the double (pagination, retries) and the per-granule choice with its reasons."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.imagery.stac import ingest
from siscore_assets.core.imagery.stac.config import load_aoi
from siscore_assets.core.imagery.stac.remote import RetriesExhausted, with_retries
from siscore_assets.core.imagery.stac.search import harmonise_offset, search_items
from siscore_assets.core.imagery.stac.selection import scl_shares
from siscore_assets_tests.core.imagery.stac.double import EXPECTED_CHOICE, SCENES, YEAR


def test_search_follows_next_links(api, cfg):
    items = search_items(cfg, load_aoi(cfg), YEAR)
    assert sorted(i["id"] for i in items) == sorted(SCENES)
    assert sum(r.startswith("POST /search") for r in api.requests) == -(
        -len(SCENES) // cfg.page_size
    )


def test_selection_picks_expected_scene_per_granule(api, cfg):
    table, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    assert {s.granule: s.item_id for s in sel.chosen} == EXPECTED_CHOICE
    by_item = table.set_index("item_id")
    assert (
        by_item.loc["51_cloudy", "status"] == "rejected"
        and "80.0% > limit 50.0%" in by_item.loc["51_cloudy", "reason"]
    )
    assert (
        by_item.loc["51_halfblank", "status"] == "runner-up"
    )  # least scene cloud, but half no-data
    assert by_item.loc["51_halfblank", "scl_nodata_share"] > 0.4
    assert "unusable share" in by_item.loc["51_halfblank", "reason"]
    assert (
        "days from the season centre" in by_item.loc["52_applied", "reason"]
    )  # tie broken by date
    assert (
        by_item.loc["52_b0400", "harmonise_offset"] == 1000
        and by_item.loc["52_applied", "harmonise_offset"] == 0
    )
    # granule 52SBD: every scene over the limit -> recorded skip, the rest goes on
    assert (table.loc[table["granule_id"] == "52SBD", "status"] == "rejected").all()
    assert any("52SBD" in s and "cloudier than 50.0%" in s for s in sel.skipped)
    assert table["chosen"].sum() == 2


def test_scenes_over_the_limit_are_read_when_those_under_it_leave_the_aoi_cloudy(api, cfg):
    """The scene-level figure only orders candidates: with every scene over the limit, the
    clearest over the AOI is still found (the 59.8 %-cloud granule over a clear lake)."""
    strict = cfg.model_copy(update=dict(max_scene_cloud=1.0))
    table, sel = ingest.select_year(strict, load_aoi(cfg), YEAR)
    assert {s.granule: s.item_id for s in sel.chosen} == EXPECTED_CHOICE
    by_item = table.set_index("item_id")
    assert (
        "over the limit 1.0% but the AOI's part is what counts" in by_item.loc["51_clear", "reason"]
    )
    assert by_item.loc["51_cloudy", "status"] == "runner-up"  # measured, lost on the AOI


def test_no_clear_pixel_of_the_aoi_is_an_error_naming_the_api(api, cfg):
    cloudy_days = cfg.model_copy(update=dict(season=("07-01", "07-02")))  # only 52D_a, 52D_b
    with pytest.raises(LookupError, match=f"{api.url} {YEAR}: no scene shows a clear pixel") as err:
        ingest.select_year(cloudy_days, load_aoi(cfg), YEAR)
    assert "granule 52SBD" in str(err.value) and "none of the 2 measured" in str(err.value)


def test_year_with_no_scene(api, cfg):
    with pytest.raises(
        LookupError,
        match=r"no sentinel-2-l2a scene in http://127\.0\.0\.1:\d+ for 2019-06-01\.\.2019-08-31",
    ):
        ingest.select_year(cfg, load_aoi(cfg), 2019)


def test_failing_api_after_retries_names_the_url(api, cfg):
    api.down = True
    with pytest.raises(RetriesExhausted, match=f"STAC search {api.url} .*failed after 4 attempt"):
        ingest.select_year(cfg, load_aoi(cfg), YEAR)
    assert len(api.requests) == 4


def test_unreachable_api(cfg):
    dead = cfg.model_copy(update=dict(api="http://127.0.0.1:9", retries=1, timeout_s=1))
    with pytest.raises(RetriesExhausted, match="STAC search http://127.0.0.1:9"):
        ingest.select_year(dead, load_aoi(cfg), YEAR)


def test_retry_backoff_then_success():
    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("IReadBlock failed at X offset 0, Y offset 0")
        return "ok"

    assert with_retries(flaky, "read", retries=3, backoff_s=0.5, sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]


def test_scl_shares_and_offsets():
    scl = np.array([[0, 0, 4, 9], [4, 4, 8, 3]])
    cloud, nodata = scl_shares(scl, np.ones_like(scl, bool))
    assert nodata == pytest.approx(2 / 8) and cloud == pytest.approx(3 / 6)
    assert harmonise_offset({"s2:processing_baseline": "04.00"}) == 1000
    assert harmonise_offset({"s2:processing_baseline": "03.01"}) == 0
    assert (
        harmonise_offset(
            {"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}
        )
        == 0
    )
    assert harmonise_offset({}, {"raster:bands": [{"offset": -0.1, "scale": 0.0001}]}) == 1000


def test_slow_api_times_out_then_fails_clearly(api, cfg):
    api.latency_s = 2.0
    quick = cfg.model_copy(update=dict(timeout_s=0.3, retries=1))
    with pytest.raises(
        RetriesExhausted, match=f"STAC search {api.url} .*failed after 2 attempt.*[Tt]imed? ?out"
    ):
        ingest.select_year(quick, load_aoi(cfg), YEAR)


def test_per_tile_choice_stops_once_clear_reads_cover_the_partly_covered_tiles(api, cfg):
    """At zoom 14 the double's tiles are only partly covered (51SZH's scenes hold the AOI's
    west, 52SBC's its east, neither reaches the tiles' northern or southern ends), so no single
    scene ever leaves one clear.  Once the first round's clear scenes cover each tile as far as
    any footprint reaches, the 80 % 51_cloudy and 52SBD's 90 / 95 % scenes are not read (they
    used to be: all 7 SCL bands); every tile keeps the scene it got when all 7 were read."""
    tile_cfg = cfg.model_copy(update=dict(scene_choice="tile"))
    table, sel = ingest.select_year(tile_cfg, load_aoi(cfg), YEAR)
    scl = {r.split("/cogs/")[1].split("?")[0] for r in api.cog_requests() if "_SCL" in r}
    assert scl == {f"{s}_SCL.tif" for s in ("51_clear", "51_halfblank", "52_b0400", "52_applied")}
    assert max(r["unusable_share"] for r in sel.tile_rows) > tile_cfg.aoi_clear_enough
    assert {r["tile_id"]: r["item_id"] for r in sel.tile_rows} == {
        "14/13925/6318": "51_clear",
        "14/13925/6319": "51_clear",
        "14/13926/6318": "52_b0400",
        "14/13926/6319": "52_b0400",
        "14/13927/6318": "52_b0400",
        "14/13927/6319": "52_b0400",
    }
    by_item = table.set_index("item_id")
    for item in ("51_cloudy", "52D_a", "52D_b"):
        assert by_item.loc[item, "status"] == "rejected"
        assert "not needed: the 4 scene(s) read before it" in by_item.loc[item, "reason"]
