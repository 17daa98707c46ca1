"""The labelling kit in a real browser: headless Chromium opens the page from file://, one
annotator labels by keys (with skip and undo), another by clicks in both views, each exports
``<name>.labels.csv``, and the exports merge into soft labels equal to a hand-computed table.

Chromium and its driver come from Debian (``scripts/setup_browser.sh``); a missing browser is a
failure, not a skip (SISCORE_SKIP_BROWSER=1 skips on purpose), as for the annotation kit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.ranking import label_kit as lk
from siscore_assets_tests.fixtures.browser import chromium, open_fresh, reload

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

TILES = [(f"14/10/{100 + i}", 2016 + i % 2) for i in range(6)]


@pytest.fixture(scope="module")
def kit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    tiles = [
        lk.KitTile(t, y, rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), i % 3)
        for i, (t, y) in enumerate(TILES)
    ]
    path = tmp_path_factory.mktemp("labelkit") / "label_kit.html"
    path.write_text(lk.render_label_kit(tiles, title="Label", country="TST", px=48).html)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("label-downloads")) as driver:
        yield driver


def _keys(d, *keys: str) -> None:
    from selenium.webdriver import ActionChains

    for k in keys:
        ActionChains(d).send_keys(k).perform()


def _progress(d) -> str:
    return d.find_element("id", "progress-text").text


def _click(d, css: str, progress: str, timeout: float = 10.0) -> None:
    """Click the button and wait until the page's progress line reads ``progress``."""
    d.find_element("css selector", css).click()
    end = time.monotonic() + timeout
    while _progress(d) != progress and time.monotonic() < end:
        time.sleep(0.05)
    assert _progress(d) == progress, f"after clicking {css}"


def _labels(d) -> dict[str, str]:
    """The labels the page keeps (its saved state), tile|year -> label."""
    return d.execute_script(
        "const k = Object.keys(localStorage).find((k) => k.startsWith('siscore-labels:'));"
        "return JSON.parse(localStorage.getItem(k)).labels;"
    )


def _message(d) -> tuple[str, str]:
    el = d.find_element("id", "message")
    return el.text, el.get_attribute("class")


def _export(d, name: str) -> None:
    box = d.find_element("id", "annotator-name")
    box.clear()
    if name:
        box.send_keys(name)
    d.find_element("id", "export").click()


def _wait(folder: Path, name: str, timeout: float = 15.0) -> Path:
    path, end = folder / name, time.monotonic() + timeout
    while time.monotonic() < end:
        if path.is_file() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.05)
    raise AssertionError(f"{name} not downloaded: {sorted(p.name for p in folder.iterdir())}")


def test_labels_by_keys_and_clicks_export_and_merge_to_hand_computed_soft_labels(
    browser, kit_file, tmp_path
):
    from selenium.webdriver.common.keys import Keys

    d = browser
    for f in d.downloads.iterdir():
        f.unlink()
    open_fresh(d, kit_file)
    assert _progress(d) == "0 of 6 labelled, 0 skipped"
    saved = "return Object.keys(localStorage).filter((k) => k.startsWith('siscore-labels:'));"
    assert d.execute_script(saved) == []  # opening the kit writes nothing
    # An empty export is refused in the page: nothing downloads.
    _export(d, "ann")
    assert _message(d)[1] == "error" and "at least one" in _message(d)[0]
    # Annotator "ann", keys only: urban, rural, uninhabited, skip, urban -> undo -> uninhabited.
    d.find_element("tag name", "body").click()
    _keys(d, "1", "2", "3", "s", "u")
    assert _progress(d) == "4 of 6 labelled, 1 skipped"
    _keys(d, "z")
    assert _progress(d) == "3 of 6 labelled, 1 skipped"
    assert "14/10/104" in d.find_element("id", "tile-caption").text  # back on the undone tile
    _keys(d, "n")
    _keys(d, Keys.ARROW_LEFT, Keys.ARROW_RIGHT)  # moving does not label
    assert _progress(d) == "4 of 6 labelled, 1 skipped"
    _export(d, "ann")
    ann = _wait(d.downloads, "ann.labels.csv")
    assert ann.read_text() == (
        "tile_id,year,label\n14/10/100,2016,urban\n14/10/101,2017,rural\n"
        "14/10/102,2016,uninhabited\n14/10/104,2016,uninhabited\n"
    )
    # The work survives a reload.
    reload(d, until=lambda d: _progress(d) == "4 of 6 labelled, 1 skipped")
    assert _progress(d) == "4 of 6 labelled, 1 skipped"
    assert _message(d)[0] == "Your saved work on this kit was restored (4 labelled, 1 skipped)."
    assert d.find_element("id", "annotator-name").get_attribute("value") == "ann"

    # Annotator "bo", clicks only: a button in the one-tile view, then the grid's card buttons.
    open_fresh(d, kit_file)
    # Each click waits for the page to show it before the next (the grid re-renders per click).
    _click(d, '#single button[data-label="urban"]', "1 of 6 labelled, 0 skipped")  # tile 0
    d.find_element("id", "mode").click()
    assert d.find_element("id", "grid").is_displayed()
    assert not d.find_element("id", "single").is_displayed()
    _click(d, '#cards button[data-index="2"][data-label="rural"]', "2 of 6 labelled, 0 skipped")
    _click(
        d, '#cards button[data-index="1"][data-label="uninhabited"]', "3 of 6 labelled, 0 skipped"
    )
    _click(d, '#cards button[data-index="5"][data-label="urban"]', "4 of 6 labelled, 0 skipped")
    _click(d, '#cards button[data-index="3"][data-label="skip"]', "4 of 6 labelled, 1 skipped")
    assert _labels(d) == {
        "14/10/100|2016": "urban",
        "14/10/101|2017": "uninhabited",
        "14/10/102|2016": "rural",
        "14/10/103|2017": "skip",
        "14/10/105|2017": "urban",
    }
    _export(d, "bo")
    bo = _wait(d.downloads, "bo.labels.csv")

    # A third annotator's file made by hand; merge against the tile-years the kit shows.
    cy = tmp_path / "cy.labels.csv"
    cy.write_text(
        "tile_id,year,label\n14/10/100,2016,rural\n14/10/101,2017,rural\n"
        "14/10/102,2016,uninhabited\n"
    )
    merged, agree, per = lk.merge_exports([ann, bo, cy], lk.kit_tiles(kit_file))
    expected = pd.DataFrame(
        {
            "tile_id": ["14/10/100", "14/10/101", "14/10/102", "14/10/104", "14/10/105"],
            "year": [2016, 2017, 2016, 2016, 2017],
            "urban": [2 / 3, 0, 0, 0, 1.0],
            "rural": [1 / 3, 2 / 3, 1 / 3, 0, 0],
            "uninhabited": [0, 1 / 3, 2 / 3, 1.0, 0],
            "n_annotators": [3, 3, 3, 1, 1],
        }
    )
    pd.testing.assert_frame_equal(merged, expected, check_dtype=False)
    assert per == {"ann": 4, "bo": 4, "cy": 3}
    # Fleiss over the three shared tiles: P_i = 1/3 each; p = (2, 4, 3) / 9
    p_e = (4 + 16 + 9) / 81
    assert agree.fleiss_kappa == pytest.approx((1 / 3 - p_e) / (1 - p_e))
