"""The annotation kit in a real browser: headless Chromium opens the page from file://, a ranking
is built by drag and drop, by clicks and by keys, exported, and the downloaded ``<name>.pog`` is
parsed back with ``core.ranking.parse_line``.

Chromium and its driver come from Debian (``scripts/setup_browser.sh``, run by ``make test``);
selenium talks to ``/usr/bin/chromedriver`` directly, so nothing is downloaded.  A missing browser
is a failure, not a skip: set SISCORE_SKIP_BROWSER=1 to skip on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from siscore_assets.core.ranking import Pog, parse_line
from siscore_assets.core.ranking.annotation_kit import render_annotation_kit
from siscore_assets_tests.fixtures.browser import chromium, open_fresh, reload

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

CLUSTERS = [0, 1, 2, 3, 4, 5, 7]  # 6 is missing on purpose: ids need not be contiguous


@pytest.fixture(scope="module")
def kit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    clusters = {
        c: [np.clip(rng.normal(30 * i, 20, (32, 32, 3)), 0, 255).astype(np.uint8) for _ in range(5)]
        for i, c in enumerate(CLUSTERS)
    }
    kit = render_annotation_kit(
        clusters, title="Test kit", country="TST", captions={c: f"{5 * c} tiles" for c in CLUSTERS}
    )
    path = tmp_path_factory.mktemp("kit") / "annotation_kit.html"
    path.write_text(kit.html, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("downloads")) as driver:
        yield driver


@pytest.fixture
def page(browser, kit_file: Path):
    """The kit, opened fresh: saved state cleared, downloads folder emptied, drops counted."""
    for f in browser.downloads.iterdir():
        f.unlink()
    open_fresh(browser, kit_file)
    browser.execute_script(
        "window.__drops = 0; document.addEventListener('drop', () => window.__drops++, true);"
    )
    return browser


def _card(d, cid: int):
    return d.find_element("css selector", f'.card[data-cluster="{cid}"]')


def _tier(d, index: int):
    return d.find_element("css selector", f'.tier[data-tier="{index}"]')


def _drag(d, cid: int, target) -> None:
    """A real mouse drag (press, move, release): Chromium turns it into HTML5 drag and drop."""
    from selenium.webdriver import ActionChains

    before = d.execute_script("return window.__drops")
    ActionChains(d).drag_and_drop(_card(d, cid), target).perform()
    assert d.execute_script("return window.__drops") == before + 1, "no HTML5 drop event fired"


def _line(d) -> str:
    return d.find_element("id", "line-preview").get_attribute("value")


def _message(d) -> tuple[str, str]:
    el = d.find_element("id", "message")
    return el.text, el.get_attribute("class")


def _wait_download(folder: Path, name: str, timeout: float = 15.0) -> Path:
    path = folder / name
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.is_file() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.05)
    raise AssertionError(
        f"{name} was not downloaded; folder has {sorted(p.name for p in folder.iterdir())}"
    )


def _export(d, name: str) -> None:
    box = d.find_element("id", "annotator-name")
    box.clear()
    if name:
        box.send_keys(name)
    d.find_element("id", "export").click()


def test_ranking_by_drag_click_and_keys_exports_a_pog_that_parses_back(page):
    from selenium.webdriver.common.keys import Keys

    d = page
    assert [
        int(c.get_attribute("data-cluster")) for c in d.find_elements("css selector", "#pool .card")
    ] == CLUSTERS
    # Drag and drop: 3 and 4 tie in tier 1; 0 onto the "new tier at the bottom" zone (tier 3).
    _drag(d, 3, _tier(d, 0))
    _drag(d, 4, _tier(d, 0))
    _drag(d, 0, d.find_element("id", "drop-new-bottom"))
    assert _line(d) == "3=4>0"
    # Click path: select 1, then "Place selected here" on tier 2.
    _card(d, 1).click()
    assert _card(d, 1).get_attribute("aria-pressed") == "true"
    _tier(d, 1).find_element("css selector", "button.place").click()
    assert _line(d) == "3=4>1>0"
    # Click a selection of two (7, then 2), then the background of tier 3: a tie at the bottom.
    _card(d, 7).click()
    _card(d, 2).click()
    _tier(d, 2).find_element("css selector", "h2").click()
    assert _line(d) == "3=4>1>0=2=7"
    # Keyboard: focus cluster 2, Enter selects it, 0 sends it back to the pool (incomparable).
    card = _card(d, 2)
    d.execute_script("arguments[0].focus()", card)
    card.send_keys(Keys.ENTER)
    assert card.get_attribute("aria-pressed") == "true"
    card.send_keys("0")
    assert _line(d) == "3=4>1>0=7"
    # Cluster 5 stays in the pool and 2 went back there: both incomparable, unmentioned.
    assert sorted(
        int(c.get_attribute("data-cluster")) for c in d.find_elements("css selector", "#pool .card")
    ) == [2, 5]

    _export(d, "eco_test-1")
    path = _wait_download(d.downloads, "eco_test-1.pog")
    text = path.read_text(encoding="utf-8")
    assert text == "3=4>1>0=7\n"
    got = parse_line(text, source=str(path), known_ids=CLUSTERS)
    assert got == Pog.from_tiers([[0, 7], [1], [3, 4]])
    assert got.nodes == frozenset({0, 1, 3, 4, 7})  # 2 and 5 left incomparable
    assert _message(d)[1] == "ok"

    # The work survives a reload (kept in the browser's local storage).
    reload(d, until=lambda d: _line(d) == "3=4>1>0=7")
    assert _line(d) == "3=4>1>0=7"
    assert _message(d)[0] == "Your saved work on this kit was restored."
    assert d.find_element("id", "annotator-name").get_attribute("value") == "eco_test-1"


def test_export_validates_name_and_tiers(page):
    d = page
    _card(d, 3).click()
    _tier(d, 0).find_element("css selector", "button.place").click()
    # One tier is not a ranking.
    _export(d, "kim")
    text, kind = _message(d)
    assert kind == "error" and "two tiers" in text
    _card(d, 1).click()
    _card(d, 0).click()
    _tier(d, 1).find_element("css selector", "button.place").click()
    # A name is required, and must be safe as a file name.
    _export(d, "")
    text, kind = _message(d)
    assert kind == "error" and "name" in text.lower()
    for bad in ("../evil", "a b", "-dash", ".hidden", "naïve", "a/b"):
        _export(d, bad)
        text, kind = _message(d)
        assert kind == "error" and "letters, digits" in text, bad
    time.sleep(0.3)
    assert list(d.downloads.iterdir()) == [], "an invalid export must not download anything"
    # A typed .pog suffix is not doubled.
    _export(d, "sat_2.pog")
    path = _wait_download(d.downloads, "sat_2.pog")
    assert parse_line(path.read_text(encoding="utf-8")) == Pog.from_tiers([[0, 1], [3]])


def test_tiers_can_be_reordered_removed_and_loaded_from_a_line(page):
    d = page
    box = d.find_element("id", "load-box")
    box.find_element("tag name", "summary").click()
    field = d.find_element("id", "load-line")
    field.send_keys("1=2>9")
    d.find_element("id", "load").click()
    text, kind = _message(d)
    assert kind == "error" and "unknown cluster 9" in text
    field.clear()
    field.send_keys("5>1=2>0")
    d.find_element("id", "load").click()
    assert _line(d) == "5>1=2>0"
    _tier(d, 2).find_element("css selector", "button.up").click()  # 0 above 1=2
    assert _line(d) == "5>0>1=2"
    _tier(d, 0).find_element("css selector", "button.remove").click()  # 5 back to the pool
    assert _line(d) == "0>1=2"
    assert "5" in [
        c.get_attribute("data-cluster") for c in d.find_elements("css selector", "#pool .card")
    ]
