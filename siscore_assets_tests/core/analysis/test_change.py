import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.analysis import change


def test_year_pairs_are_consecutive_then_first_to_last():
    assert change.year_pairs([2019, 2016, 2017, 2018]) == [
        (2016, 2017),
        (2017, 2018),
        (2018, 2019),
        (2016, 2019),
    ]
    assert change.year_pairs([2016, 2017]) == [(2016, 2017)]


def test_noise_floor_is_robust_to_a_few_large_changes():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.02, 2000)
    d[:100] += 0.5  # 5 % of the places really changed
    assert change.noise_floor(d) == pytest.approx(0.02, rel=0.15)
    assert np.isnan(change.noise_floor(d[:3]))


def test_quantised_deltas_have_no_noise_floor_and_flag_nothing():
    """Most deltas exactly 0 (night lights, a score file in two decimals): a MAD of 0 would flag
    every tile that moved at all; the floor is not measurable, nothing is flagged."""
    d = np.zeros(100)
    d[:40] = np.tile([0.01, -0.01], 20)
    assert np.isnan(change.noise_floor(d))
    flags = change.flag_changes(d, np.ones(100, bool))
    assert flags["noise_sd"].isna().all() and not flags["significant"].any()
    assert change.noise_floor(np.zeros(50)) == 0.0  # nothing moved: nothing to flag either
    wide = pd.DataFrame({2016: np.zeros(100), 2017: d})
    summary = change.change_summary(wide)
    assert summary[["noise_sd", "flagged_up", "flagged_down"]].isna().all(axis=None)
    truth = pd.DataFrame({2016: np.zeros(100), 2017: np.r_[np.arange(1.0, 41.0), np.zeros(60)]})
    table = change.validation_change("T", {"nightlight": wide}, truth, truth >= 0, "t")
    figures = table.set_index("figure")["value"]
    assert np.isnan(figures["false_change"]) and np.isnan(figures["flagged_changed"])
    assert np.isfinite(figures["rho_changed"])


def test_flags_mark_changes_beyond_the_noise_and_only_inhabited_tiles():
    rng = np.random.default_rng(1)
    d = rng.normal(0, 0.01, 500)
    d[:20] = 0.2
    inhabited = np.ones(500, bool)
    inhabited[:5] = False
    flags = change.flag_changes(d, inhabited)
    assert not flags["significant"][:5].any()
    assert flags["significant"][5:20].all()
    assert flags["significant"][20:].mean() < 0.1  # ~5 % of pure noise at z = 1.96
    assert (flags["delta_lo"] < d).all() and (flags["delta_hi"] > d).all()
    wider = change.flag_changes(d, inhabited, spread=np.full(500, 0.2))
    assert not wider["significant"].any()


def test_change_figures_perfect_and_reversed_tracking():
    truth = np.r_[np.zeros(50), np.linspace(1, 100, 50)]
    sig = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    good = change.change_figures(truth * 0.01, truth, sig)
    assert good["rho_changed"] == pytest.approx(1.0)
    assert good["sign_top"] == 1.0
    assert good["false_change"] == 0.0 and good["flagged_changed"] == 1.0
    assert good["tiles_changed"] == 50 and good["tiles_still"] == 50
    bad = change.change_figures(-truth, truth, ~sig)
    assert bad["rho_changed"] == pytest.approx(-1.0)
    assert bad["sign_top"] == 0.0 and bad["false_change"] == 1.0
    assert "rho_changed_log" not in good  # no first-year truth given


def test_scale_free_figures_for_a_score_linear_in_log_truth():
    """A noiseless score linear in log(1 + truth): perfect on the log change, and its
    rho_changed equals the ceiling, which is below 1 where small places grow fast."""
    rng = np.random.default_rng(0)
    first = rng.lognormal(11, 1, 300)
    last = first * rng.lognormal(0.1, 0.2, 300)  # relative growth unrelated to the level
    score = lambda t: 0.1 * np.log1p(t)  # noqa: E731
    figs = change.change_figures(score(last) - score(first), last - first, truth_from=first)
    assert figs["rho_changed_log"] == pytest.approx(1.0)
    assert figs["rho_changed"] == pytest.approx(figs["rho_log_ceiling"])
    assert 0.3 < figs["rho_log_ceiling"] < 0.95
    linear = change.change_figures(last - first, last - first, truth_from=first)
    assert linear["rho_changed"] == pytest.approx(1.0)
    assert linear["rho_changed_log"] == pytest.approx(figs["rho_log_ceiling"])
    negative = change.change_figures(last - first, last - first, truth_from=first - 1e9)
    assert np.isnan(negative["rho_changed_log"]) and np.isnan(negative["rho_log_ceiling"])


def test_validation_change_rows_per_model_and_pair():
    tiles = [f"t{i}" for i in range(40)]
    truth = pd.DataFrame({y: np.arange(40.0) * (y - 2015) for y in (2016, 2017, 2018)}, tiles)
    truth.iloc[:10] = 0.0  # uninhabited: left out
    score = truth / 1000.0
    table = change.validation_change(
        "SYN", {"siscore": score}, truth, truth > 0, "building_floor_area_m2"
    )
    pairs = set(zip(table["year_from"], table["year_to"], strict=True))
    assert pairs == {(2016, 2017), (2017, 2018), (2016, 2018)}
    rho = table[(table["figure"] == "rho_changed")]["value"]
    assert (rho > 0.99).all()
    assert (table[table["figure"] == "rho_changed_log"]["value"] > 0.99).all()
    tiles_row = table[(table["figure"] == "tiles") & (table["year_to"] == 2018)]
    assert (tiles_row["value"] == 30).all()


def test_rho_given_level_counts_only_what_the_delta_adds_to_the_level():
    rng = np.random.default_rng(0)
    level = rng.uniform(0, 1, 400)
    growth = level + 0.3 * rng.normal(size=400)  # bigger places grow more
    blind = level * 2.0 + 0.3 * rng.normal(size=400)  # a "delta" that only knows the level
    seeing = growth + 0.1 * rng.normal(size=400)  # a delta that sees the place's own growth
    for delta, lo, hi in ((blind, -0.15, 0.15), (seeing, 0.8, 1.0)):
        figs = change.change_figures(delta, growth, level=level)
        assert figs["rho_changed"] > 0.6 and lo < figs["rho_given_level"] < hi
    # a monotone rescaling of the level does not change it; without a level it is not reported
    assert change.partial_spearman(seeing, growth, level) == pytest.approx(
        change.partial_spearman(seeing, growth, np.exp(5 * level))
    )
    assert "rho_given_level" not in change.change_figures(seeing, growth)


def test_a_score_on_another_scale_is_flagged_as_the_score_is():
    rng = np.random.default_rng(1)
    tiles = [f"t{i}" for i in range(200)]
    truth = pd.DataFrame({y: rng.uniform(1, 2, 200) * (y - 2014) for y in (2016, 2017)}, tiles)
    score = truth / 4 + rng.normal(0, 0.02, truth.shape)
    people = np.expm1(6 * score)  # the same scores, convex: dense places' deltas are larger
    scores = {"siscore": score, "siscore_census": people}
    args = ("SYN", scores, truth, truth > 0, "floor")
    plain = change.validation_change(*args).set_index(["model", "figure"])["value"]
    shared = change.validation_change(*args, flags_of={"siscore_census": "siscore"})
    shared = shared.set_index(["model", "figure"])["value"]
    flagged = ("siscore", "flagged_changed")
    assert shared[("siscore_census", "flagged_changed")] == shared[flagged] == plain[flagged]
    assert plain[("siscore_census", "flagged_changed")] != plain[flagged]  # its own floor differs
    rho = ("siscore_census", "rho_changed")
    assert shared[rho] == plain[rho]  # only the flags are shared
