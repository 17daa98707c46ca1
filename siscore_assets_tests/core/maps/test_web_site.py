"""The map's static site from a small warehouse: every tile's record equals the warehouse, the
imagery pyramid goes from zoom 14 to 8, nothing is fetched from elsewhere, the licence ships,
and a one-year warehouse, a country without districts and a tile without imagery still give a
site that says what is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siscore_assets.core.maps.web import layers, pyramid, site
from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.fixtures.web_warehouse import CLOUDY, CORRUPT, X0, Y0, make_warehouse


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, site.SiteReport]:
    root = tmp_path_factory.mktemp("web")
    db = make_warehouse(root)
    report = site.build_site(db, "SYN", root / "site")
    return db, root / "site", report


def _cell(out: Path, x: int, y: int) -> dict:
    return json.loads((out / "cells" / str(x >> 4) / f"{y >> 4}.json").read_text())[f"{x}_{y}"]


def test_every_tile_record_equals_the_warehouse(built):
    db, out, report = built
    assert report.years == [2016, 2017] and report.tiles == 81 and not report.notes
    grid = wh.query(db, "SELECT year, x, y, score, inhabited FROM siscore_grid")
    for row in grid.itertuples(index=False):
        rec = _cell(out, row.x, row.y)
        i = [2016, 2017].index(row.year)
        assert rec["s"][i] == pytest.approx(row.score, abs=1e-6)
        assert rec["st"][i] == ("ok" if row.inhabited else "uninhabited")
        assert rec["img"][i] == 1
    cloudy = _cell(out, *CLOUDY)
    assert cloudy["st"][1] == "cloudy" and cloudy["img"][1] == 0 and cloudy["s"][1] is None
    assert _cell(out, *CORRUPT)["st"][0] == "corrupt"


def test_imagery_pyramid_from_zoom_14_to_8(built):
    _, out, report = built
    for year in (2016, 2017):
        z14 = list((out / "imagery" / str(year) / "14").rglob("*.webp"))
        assert len(z14) == 80  # one tile of each year has no image
        for z in range(8, 14):
            assert list((out / "imagery" / str(year) / str(z)).rglob("*.webp")), z
        assert not (out / "imagery" / str(year) / "7").exists()
    assert not (out / "imagery" / "2017" / "14" / str(CLOUDY[0]) / f"{CLOUDY[1]}.webp").exists()
    # zoom 8 holds all 81 tiles in one image, and the tile's own pixels are in it
    z8 = np.asarray(Image.open(next((out / "imagery" / "2016" / "8").rglob("*.webp"))))
    assert z8.shape == (16, 16, 4) and z8[..., 3].max() == 255


def test_value_layers_colour_each_tile_by_its_score(built):
    db, out, report = built
    grid = wh.query(db, "SELECT x, y, score, inhabited FROM siscore_grid WHERE year = 2017")
    tile = np.asarray(
        Image.open(out / "layers" / "score" / "2017" / "8" / f"{X0 >> 6}" / f"{Y0 >> 6}.png")
    )
    assert tile.shape == (64, 64, 4)
    for row in grid.itertuples(index=False):
        px = tile[row.y & 63, row.x & 63]
        if row.inhabited:
            assert tuple(px) == tuple(layers.SCORE_SCALE.rgba(np.array([row.score]))[0])
        else:
            assert px[3] == 0
    # change: colour by delta, faded where the change is within the pair's noise
    ch = np.asarray(
        Image.open(out / "layers" / "change" / "2016_2017" / "8" / f"{X0 >> 6}" / f"{Y0 >> 6}.png")
    )
    alphas = set(np.unique(ch[..., 3]).tolist())
    assert alphas <= {0, 255, round(255 * site.NOT_SIGNIFICANT_ALPHA)} and 255 in alphas
    assert report.layers["change_2016_2017"]["significant"] == int((ch[..., 3] == 255).sum())
    cfg = json.loads((out / "site.json").read_text())
    assert set(cfg["change"]) == {"2016_2017"}
    assert cfg["scales"]["change"]["kind"] == "diverging"
    assert cfg["scales"]["score"]["kind"] == "sequential"


def test_site_is_offline_and_ships_the_licence(built):
    _, out, _ = built
    vendor = out / "vendor" / "maplibre-gl"
    assert "MapLibre" in (vendor / "LICENSE.txt").read_text()
    assert "4.7.1" in (vendor / "VERSION").read_text()
    for name in ("index.html", "map.js", "map.css", "country.html"):
        text = (out / name).read_text()
        assert not re.search(r"(src|href)=\"https?://", text), name
        assert "fetch(\"http" not in text


def test_districts_carry_their_yearly_aggregates(built):
    db, out, _ = built
    geo = json.loads((out / "districts.geojson").read_text())
    ds = wh.query(db, "SELECT year, district_id, score_mean FROM district_siscore")
    props = {f["properties"]["district_id"]: f["properties"] for f in geo["features"]}
    assert {p["name"] for p in props.values()} == {"West", "East"}
    for row in ds.itertuples(index=False):
        assert props[row.district_id][f"mean_{row.year}"] == pytest.approx(row.score_mean, abs=1e-6)


def test_one_year_and_no_districts_say_what_is_missing(tmp_path):
    db = make_warehouse(tmp_path, years=(2016,), districts=False)
    report = site.build_site(db, "SYN", tmp_path / "site")
    assert any("one year only" in n for n in report.notes)
    assert any("no districts" in n for n in report.notes)
    cfg = json.loads((tmp_path / "site" / "site.json").read_text())
    assert cfg["change"] == {} and "districts" not in cfg
    assert "one year only" in (tmp_path / "site" / "index.html").read_text()


def test_rebuild_replaces_the_site_whole(built, tmp_path):
    db, _, _ = built
    out = tmp_path / "site"
    site.build_site(db, "SYN", out, imagery=False)
    (out / "stale.txt").write_text("old")
    report = site.build_site(db, "SYN", out, imagery=False)
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()
    assert not list(tmp_path.glob(".site.*")) and report.bytes == pyramid.folder_size(out)[0]


def test_unknown_country_gives_an_empty_site_with_a_note(built, tmp_path):
    db, _, _ = built
    report = site.build_site(db, "XXX", tmp_path / "site")
    assert report.years == [] and any("no siScore for XXX" in n for n in report.notes)


def test_a_folder_of_other_files_is_refused_and_kept(built, tmp_path):
    db, _, _ = built
    out = tmp_path / "www"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(site.NotASite, match="holds no siScore site"):
        site.build_site(db, "SYN", out, imagery=False)
    assert (out / "notes.txt").read_text() == "mine" and not list(tmp_path.glob(".www.*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert site.build_site(db, "SYN", empty, imagery=False).years == [2016, 2017]


def test_districts_without_district_scores_still_build(tmp_path):
    db = make_warehouse(tmp_path)
    for year in (2016, 2017):
        wh.clear(db, "district_siscore", {"country": "SYN", "year": year})
    site.build_site(db, "SYN", tmp_path / "site", imagery=False)
    geo = json.loads((tmp_path / "site" / "districts.geojson").read_text())
    assert len(geo["features"]) == 2
    for f in geo["features"]:
        assert f["properties"]["mean_2016"] is None and f["properties"]["tiles_2017"] == 0


def test_a_country_on_another_zoom_is_refused_by_name(tmp_path):
    db = make_warehouse(tmp_path)
    for year in (2016, 2017):
        keys = {"country": "SYN", "year": year}
        for table in ("patches", "siscore_grid"):
            rows = wh.query(db, f"SELECT * FROM {table} WHERE year = ?", [year])
            wh.write(db, table, rows.assign(z=15), keys)
    with pytest.raises(ValueError, match="zoom 15: the map draws zoom 14 tiles only"):
        site.build_site(db, "SYN", tmp_path / "site", imagery=False)
    assert not (tmp_path / "site").exists()


def test_change_scale_ends_are_round_numbers():
    scale = layers.change_scale([np.array([0.11, -0.14, 0.02])])
    assert scale.vmax == 0.15 and scale.vmin == -0.15 and repr(scale.vmax) == "0.15"


def test_a_site_is_current_only_for_its_own_country_and_warehouse(built, tmp_path):
    db, out, _ = built
    assert site.is_current(db, "SYN", out) and site.is_current(db, "SYN", out, [2016, 2017])
    assert not site.is_current(db, "XXX", out)  # no XXX rows: no mtime is newer than the site
    assert not site.is_current(db, "SYN", out, [2017])  # the site shows 2016 too
    copy = tmp_path / "copy.duckdb"  # another warehouse, with no tables newer than the site
    assert not site.is_current(copy, "SYN", out)


def test_configured_years_leave_the_others_out(built, tmp_path):
    db, _, _ = built
    report = site.build_site(db, "SYN", tmp_path / "site", imagery=False, years=[2017, 2020])
    assert report.years == [2017] and report.left_out == [2016]
    assert any("one year only (2017)" in n for n in report.notes)
    cfg = json.loads((tmp_path / "site" / "site.json").read_text())
    assert cfg["years"] == [2017] and cfg["change"] == {}
