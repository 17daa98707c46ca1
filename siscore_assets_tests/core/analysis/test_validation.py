"""Validation: Spearman + bootstrap at grid level, OLS R² at district level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from siscore_assets.core.analysis.validation import (
    GRID_COLUMNS,
    bootstrap_spearman,
    district_validation,
    grid_validation,
)
from siscore_assets.core.ranking import cluster_order


def _frame(n: int = 300, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.uniform(size=n)
    df = pd.DataFrame(
        {
            "siscore": s,
            "baseline": rng.uniform(size=n),
            "pop": np.expm1(3 * s + rng.normal(scale=0.5, size=n)),
            "lights": np.round(5 * s + rng.normal(size=n)),  # ties
        }
    )
    df.loc[:9, "siscore"] = np.nan
    df.loc[5:14, "pop"] = np.nan
    df.loc[20, "pop"] = np.inf
    return df


def test_grid_rho_equals_scipy_and_dropped_counted():
    df = _frame()
    out = grid_validation(df, ["siscore", "baseline"], ["pop", "lights"], n_boot=100, seed=3)
    assert list(out.columns) == GRID_COLUMNS and len(out) == 4
    for r in out.itertuples():
        joined = df[[r.model, r.proxy]].replace([np.inf, -np.inf], np.nan).dropna()
        ref = stats.spearmanr(joined[r.model], joined[r.proxy])
        assert r.n == len(joined) and r.n_dropped == len(df) - len(joined)
        assert r.spearman_rho == pytest.approx(ref.statistic, abs=1e-12)
        assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert r.ci_low < r.spearman_rho < r.ci_high
    o = out.set_index(["model", "proxy"])
    assert o.loc[("siscore", "pop"), "n_dropped"] == 16  # rows 0-14 and 20
    assert o.loc[("baseline", "pop"), "n_dropped"] == 11
    assert o.loc[("siscore", "lights"), "n_dropped"] == 10
    assert o.loc[("siscore", "pop"), "spearman_rho"] > 0.7
    again = grid_validation(df, ["siscore", "baseline"], ["pop", "lights"], n_boot=100, seed=3)
    pd.testing.assert_frame_equal(out, again)


def test_bootstrap_matches_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = np.round(x + rng.normal(size=40))
    boots = bootstrap_spearman(x, y, n_boot=50, seed=7)
    idx = np.random.default_rng(7).integers(0, 40, size=(50, 40))
    ref = [stats.spearmanr(x[i], y[i]).statistic for i in idx]
    np.testing.assert_allclose(boots, ref, atol=1e-12)


def test_perfect_correlation():
    x = np.linspace(0, 1, 50)
    df = pd.DataFrame({"s": x, "up": np.exp(x), "down": -x})
    out = grid_validation(df, ["s"], ["up", "down"], n_boot=50).set_index("proxy")
    assert out.loc["up", "spearman_rho"] == pytest.approx(1.0)
    assert out.loc["up", "ci_low"] == pytest.approx(1.0) and out.loc[
        "up", "ci_high"
    ] == pytest.approx(1.0)
    assert out.loc["down", "spearman_rho"] == pytest.approx(-1.0)
    d = district_validation(pd.DataFrame({"s": x, "p": np.expm1(2 * x + 1)}), ["s"], ["p"])
    assert d.loc[0, "r2"] == pytest.approx(1.0) and d.loc[0, "slope"] == pytest.approx(2.0)


def test_degenerate_pairs_are_nan():
    df = pd.DataFrame(
        {"s": [1.0, 1.0, 1.0, 1.0], "p": [1.0, 2.0, 3.0, 4.0], "q": [1.0, np.nan, np.nan, 2]}
    )
    out = grid_validation(df, ["s", "p"], ["p", "q"], n_boot=10).set_index(["model", "proxy"])
    assert np.isnan(out.loc[("s", "p"), "spearman_rho"])  # constant score
    assert out.loc[("p", "q"), "n"] == 2 and np.isnan(out.loc[("p", "q"), "spearman_rho"])


def test_district_r2_equals_statsmodels():
    rng = np.random.default_rng(5)
    n = 40
    s = rng.uniform(size=n)
    df = pd.DataFrame({"siscore": s, "pop": np.expm1(2 * s + rng.normal(scale=0.3, size=n) + 4)})
    df.loc[3, "pop"] = np.nan
    df.loc[7, "siscore"] = np.nan
    out = district_validation(df, ["siscore"], ["pop"])
    assert out.attrs["proxy_transform"] == "log1p"
    d = df.dropna()
    ref = sm.OLS(np.log1p(d["pop"]), sm.add_constant(d["siscore"])).fit()
    r = out.iloc[0]
    assert r["n"] == n - 2
    assert r["r2"] == pytest.approx(ref.rsquared, rel=1e-12)
    assert r["slope"] == pytest.approx(ref.params["siscore"], rel=1e-12)
    assert r["p_value"] == pytest.approx(ref.pvalues["siscore"], rel=1e-9)


def test_every_dropped_tile_has_one_reason():
    from siscore_assets.core.analysis.validation import DROP_COLUMNS, drop_counts

    df = pd.DataFrame(
        {
            "status": ["ok", "ok", "cloudy", "blank", "corrupt", "ok", "ok", None, "ok", "ok"],
            "inhabited": [True, True, None, None, None, False, True, True, True, False],
            "s": [0.1, 0.5, np.nan, np.nan, np.nan, 0.2, np.nan, 0.9, 0.3, 0.4],
            "p": [1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 6.0, 7.0, np.nan, 2.5],
        }
    )
    used, counts = drop_counts(df, "s", "p", keep_col="inhabited")
    assert counts == {"cloudy": 1, "unusable": 2, "no_score": 1, "no_proxy": 1, "uninhabited": 2}
    assert used.sum() == 3 and used.sum() + sum(counts.values()) == len(df)
    t = grid_validation(df, ["s"], ["p"], n_boot=0)
    assert t.loc[0, "n"] == 5 and t.loc[0, "dropped_uninhabited"] == 0
    assert (t[DROP_COLUMNS].sum(axis=1) == t["n_dropped"]).all()


def test_grid_ci_is_seeded_and_covers_rho():
    df = _frame()
    a = grid_validation(df, ["siscore"], ["pop"], n_boot=1000, seed=3)
    b = grid_validation(df, ["siscore"], ["pop"], n_boot=1000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "ci_low"] < a.loc[0, "spearman_rho"] < a.loc[0, "ci_high"]
    assert grid_validation(df, ["siscore"], ["pop"], skip_pairs=[("siscore", "pop")]).empty


def test_district_r2_ci_is_a_bootstrap_of_statsmodels_r2():
    from siscore_assets.core.analysis.validation import bootstrap_r2

    rng = np.random.default_rng(4)
    x = rng.uniform(size=40)
    y = 2 * x + rng.normal(scale=0.3, size=40)
    boots = bootstrap_r2(x, y, n_boot=50, seed=1)
    idx = np.random.default_rng(1).integers(0, 40, size=(50, 40))
    direct = [sm.OLS(y[i], sm.add_constant(x[i])).fit().rsquared for i in idx]
    np.testing.assert_allclose(boots, direct, rtol=1e-10)
    t = district_validation(pd.DataFrame({"s": x, "p": np.expm1(y)}), ["s"], ["p"], seed=1)
    assert t.loc[0, "ci_low"] < t.loc[0, "r2"] < t.loc[0, "ci_high"]


def test_internal_validation_figures():
    from siscore_assets.core.analysis import validation as v

    labels = np.array([[1, 0, 0], [0.75, 0.25, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]], float)
    good = v.label_agreement(np.array([0.9, 0.8, 0.5, 0.3, 0.1]), labels)
    assert good["label_spearman"] == pytest.approx(1.0) and good["urban_rural_auc"] == 1.0
    assert cluster_order({0: 0.1, 1: 0.5, 2: 0.4}, {0: 0, 1: 1, 2: 2}) == pytest.approx(0.5)
    years = pd.DataFrame(
        {2016: [0.1, 0.2, 0.3, 0.9], 2017: [0.1, 0.25, 0.3, 0.2]}, index=list("abcd")
    )
    ya = v.year_agreement(years)
    assert ya["year_rho_2016_2017"] == pytest.approx(0.4) and ya["tiles_compared"] == 4
    assert ya["tiles_changed"] >= 1  # d moved by 0.7, far beyond the others' noise
    spread = v.seed_spread([{"a": 1.0}, {"a": 3.0}])
    assert spread["a_mean"] == 2.0 and spread["a_sd"] == pytest.approx(np.sqrt(2))


def test_large_pairs_use_a_bounded_m_out_of_n_bootstrap():
    """Above BOOT_MAX_M tiles the CI comes from resamples of m tiles, rescaled: it still covers
    rho, is about as wide as the full bootstrap's, and the table says which size it used."""
    from siscore_assets.core.analysis import validation as v

    rng = np.random.default_rng(3)
    x = rng.normal(size=4000)
    y = x + rng.normal(scale=1.5, size=4000)
    rho = float(stats.spearmanr(x, y).statistic)
    full = v.spearman_ci(x, y, rho, n_boot=400, seed=0, alpha=0.05)
    small = v.spearman_ci(x, y, rho, n_boot=400, seed=0, alpha=0.05, max_m=1000)
    assert full[2] == 4000 and small[2] == 1000
    assert small[0] < rho < small[1]
    assert abs((small[1] - small[0]) - (full[1] - full[0])) < 0.35 * (full[1] - full[0])
    frame = pd.DataFrame({"s": x, "p": y, "status": "ok"})
    table = v.grid_validation(frame, ["s"], ["p"], n_boot=50)
    assert table["boot_m"].tolist() == [4000]


def test_a_signed_survey_value_is_regressed_untransformed():
    """A survey's wealth index is a signed score: log1p would drop the districts at or below -1
    (the poorest) and bend the rest, so it is regressed as it is; other proxies keep log1p."""
    rng = np.random.default_rng(0)
    s = rng.uniform(0.1, 0.9, 40)
    wealth = 3 * (s - 0.5) + rng.normal(0, 0.5, 40)
    assert (wealth <= -1).sum() >= 3
    df = pd.DataFrame({"siscore": s, "dhs": wealth, "pop": np.expm1(2 * s + 4)})
    out = district_validation(df, ["siscore"], ["dhs", "pop"], n_boot=0, untransformed=["dhs"])
    row = out.set_index("proxy").loc["dhs"]
    ref = sm.OLS(wealth, sm.add_constant(s)).fit()
    assert row["n"] == 40 and row["n_dropped"] == 0
    assert row["r2"] == pytest.approx(ref.rsquared, rel=1e-12)
    plain = district_validation(df, ["siscore"], ["pop"], n_boot=0)
    assert out.set_index("proxy").loc["pop", "r2"] == plain["r2"].iloc[0]
    assert out.attrs["untransformed"] == ["dhs"]
