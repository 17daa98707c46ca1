"""The census link: recovers the link a census was drawn from, the linear link where people
follow the score, and refuses a census too small to fix a scale."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.analysis.census_link import (
    CensusLinkError,
    fit_census_link,
    link_values,
)


def _country(beta: float, k: float = 500.0, districts: int = 12, noise: float = 0.02, seed=0):
    """Tiles of ``districts`` districts with scores of different spreads, and each district's
    population drawn from the link (``noise``: its log error)."""
    rng = np.random.default_rng(seed)
    scores, where = [], []
    for i in range(districts):
        n = int(rng.integers(20, 80))
        centre = rng.uniform(0.1, 0.8)
        s = np.clip(rng.normal(centre, 0.15, n), 0, 1)
        s[rng.random(n) < 0.3] = 0.0  # uninhabited tiles hold nobody
        scores.append(s)
        where.append(np.full(n, i))
    s, d = np.concatenate(scores), np.concatenate(where)
    people = k * link_values(beta, s)
    pop = np.bincount(d, people, districts) * np.exp(rng.normal(0, noise, districts))
    return s, d, pop


def test_link_values_start_at_zero_with_slope_one_and_nest_the_linear_link():
    s = np.array([0.0, 1e-6, 0.5, 1.0])
    for beta in (0.0, 3.0, 12.0):
        v = link_values(beta, s)
        assert v[0] == 0 and v[1] == pytest.approx(1e-6, rel=1e-4) and (np.diff(v) > 0).all()
    assert link_values(1e-12, s) == pytest.approx(s)
    assert link_values(4.0, np.array([1.0]))[0] == pytest.approx(np.expm1(4.0) / 4.0)


@pytest.mark.parametrize("beta", [0.0, 2.0, 7.0, 15.0])
def test_the_fit_recovers_the_census_link(beta):
    s, d, pop = _country(beta)
    link = fit_census_link(s, d, pop, 2016)
    assert link.beta == pytest.approx(beta, abs=0.6)
    assert link.people_per_unit == pytest.approx(500.0, rel=0.25)
    assert link.districts == 12 and link.year == 2016 and link.log_rmse < 0.05
    if beta >= 7:
        assert link.log_rmse_linear > 5 * link.log_rmse  # the census rejects the linear link
    # a tile's people sum to the district's census
    est = np.bincount(d, link.people(s), 12)
    assert np.abs(np.log(est / pop)).max() < 0.1


def test_outside_tiles_and_districts_without_a_census_are_left_out():
    s, d, pop = _country(7.0)
    pop[0] = np.nan  # no census
    pop[1] = 0.0
    d = np.where(d == 2, -1, d)  # district 2's tiles lie outside every polygon
    link = fit_census_link(s, d, pop, 2016)
    assert link.districts == 9 and link.beta == pytest.approx(7.0, abs=0.6)


def test_a_district_its_tiles_only_partly_cover_is_left_out():
    s, d, pop = _country(7.0)
    cover = np.ones(12)
    keep = np.ones(len(s), bool)
    for i in (3, 4, 5, 6):  # the AOI cuts these districts: 20 % of their tiles are there
        rows = np.flatnonzero(d == i)
        keep[rows[int(0.2 * len(rows)) :]] = False
        cover[i] = 0.2
    blind = fit_census_link(s[keep], d[keep], pop, 2016)  # fitted against their whole census
    link = fit_census_link(s[keep], d[keep], pop, 2016, coverage=cover)
    assert (link.districts, link.districts_partial) == (8, 4) and blind.districts == 12
    assert link.beta == pytest.approx(7.0, abs=0.6) and link.log_rmse < 0.05
    assert blind.log_rmse > 5 * link.log_rmse


def test_too_small_a_census_is_a_clear_error():
    s, d, pop = _country(7.0, districts=4)
    with pytest.raises(CensusLinkError, match=r"4 district\(s\) hold scored tiles .* needs 5"):
        fit_census_link(s, d, pop, 2019)
    s, d, pop = _country(7.0, districts=6)
    cover = np.array([1.0, 0.95, 0.9, 0.85, 0.5, 0.2])  # an AOI that cuts two districts
    with pytest.raises(CensusLinkError, match=r"4 district.* \(2 more only partly covered\)"):
        fit_census_link(s, d, pop, 2019, coverage=cover)
    s, d, pop = _country(7.0)
    with pytest.raises(ValueError, match="scores for"):
        fit_census_link(s[:-1], d, pop, 2019)
    with pytest.raises(CensusLinkError, match=r"scores of 2019 outside \[0, 1\] \(0 to 60\)"):
        fit_census_link(s * 60, d, pop, 2019)  # e.g. an imported score file's own range


def test_the_same_input_gives_the_same_link():
    s, d, pop = _country(5.0, noise=0.2, seed=3)
    assert fit_census_link(s, d, pop, 2016) == fit_census_link(s, d, pop, 2016)


def test_add_people_counts_the_change_in_people_and_keeps_the_columns_without_a_link():
    import pandas as pd

    from siscore_assets.core.analysis.census_link import CensusLink, add_people

    table = pd.DataFrame(
        {"score": [0.0, 0.5, 0.8], "score_prev": [0.0, 0.4, np.nan], "score_base": [0.1, 0.2, 0.3]}
    )
    table["tile_id"] = ["a", "b", "c"]
    table["year"], table["prev_year"], table["base_year"] = 2018, 2017, 2016
    link = CensusLink(2016, 4.0, 100.0, 7, 0, 0.1, 0.5)
    everyone = {y: pd.Series(True, index=["a", "b", "c"]) for y in (2016, 2017, 2018)}
    out = add_people(table, link, everyone)
    assert out["people"].tolist() == pytest.approx(
        [0.0, 100 * np.expm1(2.0) / 4, 100 * np.expm1(3.2) / 4]
    )
    assert out["delta_people_prev"].iloc[1] == pytest.approx(
        100 * (np.expm1(2.0) - np.expm1(1.6)) / 4
    )
    assert np.isnan(out["delta_people_prev"].iloc[2])  # no previous score: no change
    assert (
        np.sign(out["delta_people_base"]) == np.sign(table["score"] - table["score_base"])
    ).all()
    bare = add_people(table, None, everyone)
    assert list(bare.columns) == list(out.columns) and bare["people"].isna().all()
    assert "people" not in table.columns  # the input is left as it was
    # a score kept for a place the year's verdict calls uninhabited (zero_filter: false) holds
    # nobody: tile b uninhabited in 2016 gains all its people since then
    some = {**everyone, 2016: pd.Series([True, False], index=["a", "b"])}  # c: no verdict
    mixed = add_people(table, link, some)
    assert mixed["delta_people_base"].tolist()[1:] == pytest.approx(mixed["people"].tolist()[1:])
