"""The labelling kit's sample, page and merge: seeded, spread over appearance and years, soft
labels equal to hand-computed vote fractions, kappas equal to statsmodels', and each bad export a
one-line ``FILE:LINE: problem``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from siscore_assets.core.ranking import label_kit as lk


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _years(n_per_year: int = 120) -> dict:
    """Two years of tiles in three looks: dark (60 %), green (30 %), bright grey (10 %)."""
    rng = np.random.default_rng(3)
    out = {}
    for year in (2016, 2017):
        looks = np.repeat(
            [0, 1, 2], [int(n_per_year * 0.6), int(n_per_year * 0.3), n_per_year // 10]
        )
        base = np.array([[30, 30, 30], [40, 140, 40], [200, 200, 200]])[looks]
        images = np.clip(
            base[:, None, None, :] + rng.normal(0, 8, (len(looks), 16, 16, 3)), 0, 255
        ).astype(np.uint8)
        ids = [f"14/{1000 + i}/{500 + year}" for i in range(len(looks))]
        out[year] = (ids, images)
    return out


def test_sample_is_seeded_and_spread_over_looks_and_years():
    years = _years()
    a = lk.sample_tiles(years, 30, seed=7, strata=3)
    assert a == lk.sample_tiles(years, 30, seed=7, strata=3)
    assert a != lk.sample_tiles(years, 30, seed=8, strata=3)
    assert len(a) == 30 and len({(t.tile_id, t.year) for t in a}) == 30
    assert {t.year for t in a} == {2016, 2017}
    # the bright 10 % gets a stratum's share (about a third), not 10 %
    bright = [t for t in a if years[t.year][1][t.row].mean() > 150]
    assert len(bright) >= 8
    for t in a:
        assert years[t.year][0][t.row] == t.tile_id


def test_sample_takes_everything_when_asked_for_more_than_there_is():
    years = _years(20)
    got = lk.sample_tiles(years, 500, seed=0, strata=4)
    assert len(got) == 2 * len(years[2016][0])
    with pytest.raises(ValueError, match="no usable tiles"):
        lk.sample_tiles({2016: ([], np.zeros((0, 8, 8, 3), np.uint8))}, 5)


def test_features_describe_colour_and_texture():
    flat = np.full((1, 32, 32, 3), 100, np.uint8)
    stripes = flat.copy()
    stripes[:, ::2] = 200
    f = lk.appearance_features(np.concatenate([flat, stripes]))
    assert f.shape == (2, 11)
    assert f[0, -1] == 0 and f[1, -1] > 0.3  # mean gradient
    assert f[0, 3] == pytest.approx(100 / 255, abs=1e-3)  # green median of the flat tile


def test_kit_page_embeds_the_tiles_and_reads_them_back(tmp_path):
    img = np.zeros((20, 20, 3), np.uint8)
    tiles = [lk.KitTile("14/1/2", 2016, img), lk.KitTile("14/1/2", 2017, img)]
    kit = lk.render_label_kit(tiles, title="T </script>", country="TST")
    assert kit.html == lk.render_label_kit(tiles, title="T </script>", country="TST").html
    assert "</script>" not in kit.html.split('id="kit-data">')[1].split("</script>")[0]
    path = _write(tmp_path / "kit.html", kit.html)
    assert lk.kit_tiles(path) == {("14/1/2", 2016), ("14/1/2", 2017)}
    with pytest.raises(ValueError, match="twice"):
        lk.render_label_kit(tiles + tiles[:1], title="T")


def test_merge_is_the_hand_computed_vote_fractions(tmp_path):
    a = _write(
        tmp_path / "ann.labels.csv",
        "tile_id,year,label\n14/1/1,2016,urban\n14/1/2,2016,rural\n14/1/3,2017,uninhabited\n",
    )
    b = _write(
        tmp_path / "bo.labels.csv",
        "tile_id,year,label\n14/1/1,2016,urban\n14/1/2,2016,uninhabited\n",
    )
    c = _write(
        tmp_path / "cy.labels.csv",
        "tile_id,year,label\n14/1/1,2016,rural\n14/1/2,2016,rural\n14/1/3,2017,uninhabited\n",
    )
    merged, agree, per = lk.merge_exports([a, b, c])
    expected = pd.DataFrame(
        {
            "tile_id": ["14/1/1", "14/1/2", "14/1/3"],
            "year": [2016, 2016, 2017],
            "urban": [2 / 3, 0.0, 0.0],
            "rural": [1 / 3, 2 / 3, 0.0],
            "uninhabited": [0.0, 1 / 3, 1.0],
            "n_annotators": [3, 3, 2],
        }
    )
    pd.testing.assert_frame_equal(merged, expected)
    assert list(merged.columns) == lk.MERGED_COLUMNS
    assert per == {"ann": 3, "bo": 2, "cy": 3}
    # Fleiss (variable raters) by hand: P_i = 1/3, 1/3, 1; p = (2, 3, 3)/8
    p_e = (4 + 9 + 9) / 64
    assert agree.fleiss_kappa == pytest.approx(((1 / 3 + 1 / 3 + 1) / 3 - p_e) / (1 - p_e))
    assert agree.shared_items == 3
    pair = agree.pairwise.set_index(["annotator_a", "annotator_b"])
    assert pair.loc[("ann", "cy"), "n_common"] == 3
    assert pair.loc[("ann", "cy"), "agreement"] == pytest.approx(2 / 3)
    assert pair.loc[("ann", "bo"), "agreement"] == pytest.approx(1 / 2)


def test_fleiss_kappa_equals_statsmodels_with_equal_raters():
    rng = np.random.default_rng(0)
    counts = rng.multinomial(5, [0.5, 0.3, 0.2], size=40)
    assert lk.fleiss_kappa(counts) == pytest.approx(sm_fleiss(counts))
    assert np.isnan(lk.fleiss_kappa(np.array([[1, 0, 0]])))  # one rater per item: nothing shared
    assert lk.cohen_kappa(["urban", "rural"], ["urban", "rural"]) == pytest.approx(1.0)


BAD = {
    "unknown": ("tile_id,year,label\n14/1/1,2016,urban\n14/9/9,2016,rural\n", ":3: unknown tile"),
    "label": ("tile_id,year,label\n14/1/1,2016,town\n", ":2: label 'town' is not one of"),
    "twice": (
        "tile_id,year,label\n14/1/1,2016,urban\n14/1/2,2016,rural\n14/1/1,2016,rural\n",
        ":4: tile 14/1/1 in 2016 labelled twice by x (first on line 2)",
    ),
    "empty": ("", ":1: empty export"),
    "header_only": ("tile_id,year,label\n", ":2: empty export"),
    "header": ("tile,year,label\n14/1/1,2016,urban\n", ":1: expected the header"),
    "year": ("tile_id,year,label\n14/1/1,20x6,urban\n", ":2: year '20x6' is not a whole number"),
    "id": ("tile_id,year,label\n1_2,2016,urban\n", ":2: tile id '1_2' is not z/x/y"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_export_is_one_line_naming_file_and_line(tmp_path, case):
    text, problem = BAD[case]
    good = _write(tmp_path / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,rural\n")
    bad = _write(tmp_path / "x.labels.csv", text)
    known = {("14/1/1", 2016), ("14/1/2", 2016)}
    with pytest.raises(lk.LabelFileError) as exc:
        lk.merge_exports([good, bad], known)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}:") and problem in msg and "\n" not in msg


def test_one_annotator_twice_is_an_error(tmp_path):
    a = _write(tmp_path / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,rural\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    b = _write(sub / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,urban\n")
    with pytest.raises(lk.LabelFileError, match="already exported"):
        lk.merge_exports([a, b])


@pytest.mark.parametrize(
    "second", ["ann (1).labels.csv", "ann.labels (2).csv", "ann(1).labels.csv"]
)
def test_a_browsers_second_download_is_not_a_second_annotator(tmp_path, second):
    """Found by review: ``ann (1).labels.csv`` beside ``ann.labels.csv`` merged as two annotators
    agreeing perfectly (Fleiss' kappa 1.000); the export holds no name, so the file name minus the
    browser's ``(1)`` is the annotator.  Refused, and found in a folder too."""
    _write(tmp_path / "ann.labels.csv", "tile_id,year,label\n14/1/1,2016,rural\n")
    _write(tmp_path / second, "tile_id,year,label\n14/1/1,2016,rural\n14/1/2,2016,urban\n")
    files = lk.export_files(tmp_path)
    assert len(files) == 2
    with pytest.raises(lk.LabelFileError, match="annotator 'ann' already exported") as exc:
        lk.merge_exports(files)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(f"{files[1]}:1: ")


def test_the_same_labels_under_another_name_are_one_annotator(tmp_path):
    """A copy renamed (``ann copy``, Safari's ``ann-2``) is the same person's labels twice; two
    people who agree on the few tiles of a small kit are two people."""
    n = lk.COPY_LABELS
    rows = [f"14/1/{i},2016,{'rural' if i % 3 else 'urban'}" for i in range(n)]
    text = "tile_id,year,label\n" + "\n".join(rows) + "\n"
    a = _write(tmp_path / "ann.labels.csv", text)
    b = _write(tmp_path / "bo.labels.csv", "tile_id,year,label\n14/1/1,2016,urban\n")
    c = _write(tmp_path / "ann-2.labels.csv", "tile_id,year,label\n" + "\n".join(rows[::-1]))
    with pytest.raises(lk.LabelFileError, match=f"^{c}:1: the same {n} labels as {a}: "):
        lk.merge_exports([a, b, c])
    assert lk.merge_exports([a, b])[2] == {"ann": n, "bo": 1}
    few = "tile_id,year,label\n14/1/1,2016,rural\n14/1/2,2016,urban\n"
    x, y = _write(tmp_path / "x.labels.csv", few), _write(tmp_path / "y.labels.csv", few)
    assert lk.merge_exports([x, y])[2] == {"x": 2, "y": 2}
