"""The seed-004 district model: the multiplicative form, augmentation, splits, baselines, Gini,
and the one-line errors for unusable targets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.analysis import indicators as ind


def _case(n_districts: int = 40, seed: int = 0, beta: float = 0.8):
    """Districts of 2..200 tiles whose indicator is exactly S * exp(a + beta * mean score)."""
    rng = np.random.default_rng(seed)
    sizes = np.unique(np.round(np.exp(rng.uniform(np.log(2), np.log(200), n_districts))))
    sizes = np.resize(sizes, n_districts).astype(int)
    rows = []
    for d, n in enumerate(sizes):
        level = rng.uniform(0.05, 0.9)
        s = np.clip(level + rng.normal(0, 0.05, n), 0, 1)
        rows += [{"tile_id": f"{d}_{i}", "district_id": d, "score": v} for i, v in enumerate(s)]
    tiles = pd.DataFrame(rows)
    g = tiles.groupby("district_id")["score"]
    ssum = g.sum() + ind.FLOOR * g.size()
    y = ssum * np.exp(1.0 + beta * g.mean())
    districts = pd.DataFrame({"district_id": np.arange(n_districts), "gdp": y.to_numpy()})
    return tiles, districts


def test_gini_known_values():
    assert ind.gini(np.ones(10)) == pytest.approx(0.0)
    assert ind.gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
    assert ind.gini(np.array([1.0, 3.0])) == pytest.approx(0.25)
    # weights are repeats
    assert ind.gini(np.array([1.0, 3.0]), np.array([2, 1])) == pytest.approx(
        ind.gini(np.array([1.0, 1.0, 3.0]))
    )
    assert np.isnan(ind.gini(np.zeros(3)))


def test_ridge_weights_are_repeats():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    w = np.r_[np.full(10, 2.0), np.ones(20)]
    a = ind.Ridge(1.0).fit(x, y, w)
    # weights are scaled to sum to the row count: 30 weighted rows stand for 40 repeated ones
    b = ind.Ridge(40 / 30).fit(np.r_[x[:10], x], np.r_[y[:10], y])
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-8)


def test_multilevel_recovers_the_multiplicative_form():
    tiles, districts = _case()
    data = ind.DistrictTiles.from_frame(tiles, districts["district_id"])
    y = districts.set_index("district_id")["gdp"]
    m = ind.MultiLevel(alpha=1e-6, augment=False).fit(data, y.index.to_numpy(), y.to_numpy())
    pred = m.predict(data, y.index.to_numpy())
    assert ind.r2(y.to_numpy(), pred) > 0.999


def test_augmentation_adds_weighted_unions():
    tiles, districts = _case(10)
    data = ind.DistrictTiles.from_frame(tiles, districts["district_id"])
    y = districts.set_index("district_id")["gdp"]
    m = ind.MultiLevel(augment=True, max_pairs=1000).fit(data, y.index.to_numpy(), y.to_numpy())
    assert m.n_examples_ == 10 + 45
    m2 = ind.MultiLevel(augment=True, max_pairs=7).fit(data, y.index.to_numpy(), y.to_numpy())
    assert m2.n_examples_ == 10 + 7
    union = data.features(data.pooled([0, 1]))
    both = np.r_[data.score[data.members(0)], data.score[data.members(1)]]
    assert union[0] == pytest.approx(both.mean())


def test_evaluate_splits_baselines_and_determinism():
    tiles, districts = _case(40)
    data = ind.DistrictTiles.from_frame(tiles, districts["district_id"])
    y = districts.set_index("district_id")["gdp"]
    nl = tiles.groupby("district_id")["score"].sum() ** 1.5
    ev = ind.evaluate(data, y, n_splits=12, seed=3, nightlight=nl)
    assert set(ev.splits["method"]) == {*ind.METHODS, ind.NIGHTLIGHT}
    assert (ev.splits.groupby("method").size() == 12).all()
    assert (ev.splits["n_test"] == 8).all() and (ev.splits["n_train"] == 32).all()
    summary = ev.summary().set_index("method")
    # exact multiplicative truth: the model beats the sum and the mean of the scores
    assert summary.loc["multilevel_no_augmentation", "r2_mean"] > 0.95
    assert summary.loc["multilevel", "r2_mean"] > summary.loc["mean_score", "r2_mean"]
    assert ev.cv_prediction.notna().sum() > 30
    again = ind.evaluate(data, y, n_splits=12, seed=3, nightlight=nl)
    pd.testing.assert_frame_equal(ev.splits, again.splits)


def test_run_predicts_every_district_adjusts_tiles_and_gini():
    tiles, districts = _case(30)
    districts.loc[districts.index[-5:], "gdp"] = np.nan  # unlabelled: predicted, not trained on
    t2 = tiles.assign(score=tiles["score"] * 0.9)
    res = ind.run({2016: tiles, 2017: t2}, districts, "gdp", 2016, n_splits=5)
    d = res.districts
    assert len(d) == 30 and d["labelled"].sum() == 25
    assert d.loc[~d["labelled"], "prediction"].notna().all()
    assert d.loc[~d["labelled"], "cv_prediction"].isna().all()
    assert set(res.tiles["year"]) == {2016, 2017} and len(res.tiles) == 2 * len(tiles)
    t16 = res.tiles[res.tiles["year"] == 2016]
    per = t16.groupby("district_id")["adjusted_score"].sum()
    np.testing.assert_allclose(per.to_numpy(), d.set_index("district_id")["prediction"][per.index])
    assert set(res.gini["level"]) == {"tiles_score", "tiles_adjusted", "districts_predicted"}
    assert res.gini["gini"].between(0, 1).all()


class _CountingYears(Mapping):
    """Years read when asked for, counting the reads (as the asset's per-year grid reader)."""

    def __init__(self, frames):
        self.frames, self.reads = frames, []

    def __getitem__(self, year):
        self.reads.append(year)
        return self.frames[year].copy()

    def __contains__(self, year):
        return year in self.frames

    def __iter__(self):
        return iter(self.frames)

    def __len__(self):
        return len(self.frames)


def test_run_reads_years_lazily_and_streams_tiles_to_a_sink():
    tiles, districts = _case(30)
    frames = {2016: tiles, 2017: tiles.assign(score=tiles["score"] * 0.9), 2018: tiles}
    eager = ind.run(dict(frames), districts, "gdp", 2017, n_splits=5)
    lazy, sunk = _CountingYears(frames), []
    streamed = ind.run(lazy, districts, "gdp", 2017, n_splits=5, tile_sink=sunk.append)
    assert sorted(lazy.reads) == [2016, 2017, 2017, 2018]  # every year once, the indicator's twice
    assert streamed.tiles.empty and [int(f["year"].iloc[0]) for f in sunk] == [2016, 2017, 2018]
    pd.testing.assert_frame_equal(pd.concat(sunk, ignore_index=True), eager.tiles)
    pd.testing.assert_frame_equal(streamed.districts, eager.districts)
    pd.testing.assert_frame_equal(streamed.gini, eager.gini)


@pytest.mark.parametrize(
    ("column", "values", "n_splits", "message"),
    [
        ("pop", None, 10, "layer.gpkg: no district column 'pop' (columns: district_id, gdp)"),
        ("gdp", [np.nan] * 40, 10, "layer.gpkg: district column 'gdp' has no numeric value"),
        ("gdp", ["x"] * 40, 10, "layer.gpkg: district column 'gdp' has no numeric value"),
        ("gdp", [1.0] * 10 + [np.nan] * 30, 100, "layer.gpkg: 10 district(s) with a value"),
    ],
)
def test_unusable_targets_are_one_line(column, values, n_splits, message):
    tiles, districts = _case(40)
    if values is not None:
        districts["gdp"] = values
    with pytest.raises(ind.IndicatorInputError) as err:
        ind.run({2016: tiles}, districts, column, 2016, n_splits=n_splits, where="layer.gpkg")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_run_with_embeddings_adds_their_features():
    tiles, districts = _case(30)
    rng = np.random.default_rng(4)
    emb = pd.DataFrame({"tile_id": tiles["tile_id"], "e0": rng.normal(size=len(tiles))})
    emb = emb.iloc[5:]  # a tile without an embedding counts as the mean (0)
    res = ind.run({2016: tiles}, districts, "gdp", 2016, n_splits=4, embedding=emb)
    plain = ind.run({2016: tiles}, districts, "gdp", 2016, n_splits=4)
    assert res.districts["prediction"].notna().all()
    assert not np.allclose(res.districts["prediction"], plain.districts["prediction"])
    data = ind.DistrictTiles.from_frame(
        tiles.assign(e0=1.0), districts["district_id"], "score", ["e0"]
    )
    assert (
        data.feature_names()[-2:] == ["emb0_mean", "emb0_std"]
        and len(data.features(data.members(0))) == 11
    )


def test_a_labelled_district_without_tiles_is_left_out_not_nan():
    """A labelled district holding no scored tile has a score sum of 0: ln 0 would turn the
    whole ridge into NaN.  It is left out of fitting and evaluation, counted, still listed."""
    tiles, districts = _case(30)
    extra = pd.DataFrame({"district_id": [30], "gdp": [5000.0]})
    res = ind.run({2016: tiles}, pd.concat([districts, extra]), "gdp", 2016, n_splits=6)
    assert res.districts["scaling"].notna().all()
    # no scored tile: its prediction is unknown, not 0, and it leaves the districts' Gini alone
    predicted = res.districts.set_index("district_id")["prediction"]
    assert np.isnan(predicted[30]) and predicted.drop(30).notna().all()
    alone = ind.run({2016: tiles}, districts, "gdp", 2016, n_splits=6).gini
    level = lambda g: g.loc[g["level"] == "districts_predicted", "gini"].item()  # noqa: E731
    assert level(res.gini) == pytest.approx(level(alone))
    summary = ind.Evaluation(res.splits, None).summary().set_index("method")
    assert summary.loc["multilevel", "splits"] == 6 and summary.loc["multilevel", "r2_mean"] > 0.9
    assert ((res.splits["n_train"] + res.splits["n_test"]) == 30).all()
    row = res.districts.set_index("district_id").loc[30]
    assert row["labelled"] and not row["fitted"] and row["n_tiles"] == 0
    assert res.left_out == {"value_not_positive": 0, "no_tiles": 1, "low_coverage": 0}
    assert res.left_out_line() == (
        "0 with a value <= 0, 1 with no scored tile, 0 with under 80% of its tiles scored"
    )


def test_low_coverage_districts_are_left_out_and_too_few_is_one_line():
    tiles, districts = _case(30)
    coverage = pd.Series(1.0, index=districts["district_id"])
    coverage[[2, 5]] = [0.5, np.nan]
    res = ind.run({2016: tiles}, districts, "gdp", 2016, n_splits=4, coverage=coverage)
    assert res.left_out["low_coverage"] == 2
    d = res.districts.set_index("district_id")
    assert not d.loc[[2, 5], "fitted"].any() and d["fitted"].sum() == 28
    assert d.loc[2, "coverage"] == 0.5 and np.isfinite(d.loc[[2, 5], "prediction"]).all()
    # the PRK case: 178 labelled districts, tiles in one of them
    many = pd.DataFrame({"district_id": np.arange(178), "gdp": 1000.0})
    one = tiles.assign(district_id=0)
    with pytest.raises(ind.IndicatorInputError) as err:
        ind.run({2016: one}, many, "gdp", 2016, n_splits=5, where="nk.shp")
    assert str(err.value) == (
        "nk.shp: 1 of 178 labelled district(s) in 'gdp' can be fitted on 2016's tiles (177 with "
        "no scored tile (ids 1, 2, 3, 4, 5, ...)); 5 splits holding out 20% need at least 15"
    )


def test_non_positive_targets_leave_training_and_evaluation_alike():
    """ln(y / S) needs y > 0: a district with y <= 0 is left out of every method's training and
    of the held-out R² (it was dropped from the model's training only), and counted."""
    tiles, districts = _case(30)
    districts.loc[[0, 1], "gdp"] = [0.0, -5.0]
    res = ind.run({2016: tiles}, districts, "gdp", 2016, n_splits=5)
    assert ((res.splits["n_train"] + res.splits["n_test"]) == 28).all()
    assert res.left_out["value_not_positive"] == 2
    d = res.districts.set_index("district_id")
    assert d.loc[[0, 1], "labelled"].all() and not d.loc[[0, 1], "fitted"].any()
    assert d.loc[[0, 1], "cv_prediction"].isna().all()
    data = ind.DistrictTiles.from_frame(tiles, districts["district_id"])
    with pytest.raises(ind.IndicatorInputError, match="2 are <= 0 or NaN"):
        ind.MultiLevel().fit(data, districts["district_id"].to_numpy(), districts["gdp"].to_numpy())
