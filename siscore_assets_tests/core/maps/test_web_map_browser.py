"""The map in a real browser, as a person uses it: headless Chromium (WebGL on SwiftShader)
opens the site served on 127.0.0.1 from a small warehouse, waits for the map to render, moves
the year slider and sees the drawn pixels change, clicks a tile and reads the warehouse's
numbers in its record, switches to change and gets the diverging legend.  A tile without
imagery says so.  Screenshots are kept in ``$SISCORE_ARTIFACTS`` (default ``artifacts/``)
``/web_map/``.

Chromium and chromedriver come from Debian (``scripts/setup_browser.sh``); a missing browser
is a failure, not a skip: SISCORE_SKIP_BROWSER=1 skips on purpose."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siscore_assets.core.maps.web import site
from siscore_assets.core.maps.web.serve import SiteServer
from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.fixtures.browser import SOFTWARE_GL, chromium
from siscore_assets_tests.fixtures.web_warehouse import CLOUDY, X0, Y0, make_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

ARTIFACTS = (
    Path(os.environ.get("SISCORE_ARTIFACTS", Path(__file__).resolve().parents[3] / "artifacts"))
    / "web_map"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with chromium(flags=SOFTWARE_GL, window="1200,800") as driver:
        root = tmp_path_factory.mktemp("webmap")
        db = make_warehouse(root)
        site.build_site(db, "SYN", root / "site")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with SiteServer(root / "site") as server:
            yield driver, server.url, db


def _wait_ready(d, timeout: float = 90.0) -> None:
    """Until the map has its style and every visible tile (map.js polls map.loaded())."""
    time.sleep(0.3)
    end = time.time() + timeout
    while time.time() < end:
        if d.execute_script("return !!(window.__siscore && window.__siscore.ready)"):
            return
        time.sleep(0.1)
    raise AssertionError(
        f"map not ready after {timeout} s: "
        + str(d.execute_script("return window.__siscore && window.__siscore.errors"))
    )


def _map_pixels(d, name: str) -> np.ndarray:
    png = d.get_screenshot_as_png()
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    el = d.find_element("id", "map")
    r = el.rect
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return img[int(r["y"]) : int(r["y"] + r["height"]), int(r["x"]) : int(r["x"] + r["width"])]


def _screen_xy(d, x: int, y: int) -> tuple[float, float]:
    """Page coordinates of the centre of zoom-14 tile (x, y)."""
    return d.execute_script(
        "const s = window.__siscore, c = s.lngLat(arguments[0] + 0.5, arguments[1] + 0.5);"
        "const p = s.map.project(c), r = document.getElementById('map').getBoundingClientRect();"
        "return [p.x + r.left, p.y + r.top];",
        x,
        y,
    )


def _click_at(d, px: float, py: float) -> None:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(d)
    actions.pointer_action.move_to_location(int(px), int(py)).click()
    actions.perform()


def test_map_renders_slider_click_and_change_legend(served):
    d, url, db = served
    d.get(url)
    _wait_ready(d)
    assert d.execute_script("return window.__siscore.errors") == []
    before = _map_pixels(d, "01_score_2017")
    assert before.std() > 5  # something is drawn, not a blank canvas

    # the year slider, moved with the keyboard as a person would
    slider = d.find_element("id", "year")
    slider.click()
    slider.send_keys("\ue012")  # ArrowLeft: 2017 -> 2016
    assert d.find_element("id", "year-label").text == "2016"
    _wait_ready(d)
    after = _map_pixels(d, "02_score_2016")
    changed = np.abs(before - after).sum(axis=2) > 30
    assert changed.mean() > 0.02, changed.mean()

    # click a tile: its record equals the warehouse
    tx, ty = X0 + 6, Y0 + 2
    _click_at(d, *_screen_xy(d, tx, ty))
    end = time.time() + 10
    while (
        time.time() < end
        and d.find_element("id", "tile").get_attribute("data-tile") != f"14/{tx}/{ty}"
    ):
        time.sleep(0.1)
    assert d.find_element("id", "tile").get_attribute("data-tile") == f"14/{tx}/{ty}"
    rows = d.find_elements("css selector", "#tile tr[data-year]")
    grid = wh.query(
        db, "SELECT year, score, inhabited FROM siscore_grid WHERE x = ? AND y = ?", [tx, ty]
    ).set_index("year")
    assert [int(r.get_attribute("data-year")) for r in rows] == [2016, 2017]
    for r in rows:
        year = int(r.get_attribute("data-year"))
        assert float(r.get_attribute("data-score")) == pytest.approx(
            grid.loc[year, "score"], abs=1e-6
        )
        status = "ok" if grid.loc[year, "inhabited"] else "uninhabited"
        assert r.get_attribute("data-status") == status
        assert f"{grid.loc[year, 'score']:.3f}" in r.text
    assert len(d.find_elements("css selector", "#tile .images img")) == 2
    assert d.find_elements("css selector", "#tile svg.chart circle")
    _map_pixels(d, "03_tile_popup")

    # switch to change: the legend becomes diverging, from 2016 to 2017
    d.find_element("css selector", "input[name=mode][value=change]").click()
    legend = d.find_element("id", "legend")
    assert legend.get_attribute("data-kind") == "diverging"
    assert "2016 → 2017" in legend.text and float(legend.get_attribute("data-vmin")) < 0
    _wait_ready(d)
    change = _map_pixels(d, "04_change_2016_2017")
    assert (np.abs(change - after).sum(axis=2) > 30).mean() > 0.02
    assert not d.find_element("id", "year").is_displayed()  # change picks its two years

    # imagery only: the year is still chosen and named
    d.find_element("css selector", "input[name=mode][value=imagery]").click()
    assert d.find_element("id", "year").is_displayed()
    assert d.find_element("id", "legend").text == "imagery · 2016"


def test_tile_without_imagery_says_so(served):
    d, url, _ = served
    d.get(url)
    _wait_ready(d)
    d.execute_script("window.__siscore.showTile(arguments[0], arguments[1])", *CLOUDY)
    end = time.time() + 10
    while time.time() < end and not d.find_elements("css selector", "#tile tr[data-year]"):
        time.sleep(0.1)
    rows = {
        r.get_attribute("data-year"): r.get_attribute("data-status")
        for r in d.find_elements("css selector", "#tile tr[data-year]")
    }
    assert rows["2017"] == "cloudy"
    assert "no image (cloudy)" in d.find_element("id", "tile").text
    _map_pixels(d, "05_tile_without_imagery")
    # a click outside the grid: the record says there is none
    d.execute_script("window.__siscore.showTile(arguments[0], arguments[1])", X0 - 50, Y0 - 50)
    end = time.time() + 10
    while time.time() < end and "no record" not in d.find_element("id", "tile").text:
        time.sleep(0.1)
    assert "no record for this tile" in d.find_element("id", "tile").text
