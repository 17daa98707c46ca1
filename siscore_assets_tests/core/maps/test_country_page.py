"""The country page's numbers are the warehouse's: validation (with bootstrap intervals),
district ranking, the regression in Table 1's layout, internal validation; a missing table is
named on the page."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from siscore_assets.core.maps import country_page
from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.fixtures.web_warehouse import make_warehouse


class _Rows(HTMLParser):
    """Every element's data-* attributes, and the table cells' text."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[dict] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        d = {k[5:]: v for k, v in attrs if k.startswith("data-")}
        if d:
            self.data.append(d)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    db = make_warehouse(root)
    html = country_page.render(db, "SYN")
    parsed = _Rows()
    parsed.feed(html)
    return db, html, parsed


def test_validation_numbers_and_intervals_equal_the_table(page):
    db, html, parsed = page
    table = wh.query(db, "SELECT * FROM validation_grid WHERE subset = 'all'")
    shown = [d for d in parsed.data if "proxy" in d and "spearman_rho" in d]
    assert len(shown) == len(table) == 8
    for d in shown:
        row = table[
            (table.year == int(d["year"]))
            & (table.proxy == d["proxy"])
            & (table.model == d["model"])
        ].iloc[0]
        assert float(d["spearman_rho"]) == pytest.approx(row.spearman_rho)
    # the chart draws each interval: a whisker per (proxy, year, model)
    assert html.count("<line x1=") >= len(table)
    assert "200 bootstrap 95% interval" in html


def test_regression_in_table_one_layout(page):
    db, html, parsed = page
    reg = wh.query(db, "SELECT * FROM development_regression")
    cells = [d for d in parsed.data if "coef" in d]
    assert len(cells) == len(reg)
    for d in cells:
        row = reg[(reg.model == d["model"]) & (reg.term == d["term"])].iloc[0]
        assert float(d["coef"]) == row.coef and float(d["se"]) == row.se
    assert "0.500***" in html and "-0.020**" in html and "(0.010)" in html
    assert "0.100<br>" in html  # p = 0.6: no star
    assert country_page.stars(0.009) == "***" and country_page.stars(0.2) == ""
    # Table 1 order: terms first, the constant last, then N / R² / clusters
    assert html.index("dist_capital_km") < html.index(">const<") < html.index(">N<")


def test_district_ranking_is_sorted_by_area_weighted_score(page):
    db, html, parsed = page
    ds = wh.query(db, "SELECT * FROM district_siscore WHERE year = 2017")
    order = [int(d["district_id"]) for d in parsed.data if list(d) == ["district_id"]]
    expect = ds.sort_values("score_area_mean", ascending=False)["district_id"].tolist()
    assert order == expect
    ranking = country_page.district_ranking(db, "SYN")
    base = wh.query(
        db, "SELECT district_id, score_area_mean FROM district_siscore WHERE year = 2016"
    ).set_index("district_id")["score_area_mean"]
    for r in ranking.itertuples(index=False):
        assert r.change_since_2016 == pytest.approx(r.score_area_mean - base[r.district_id])
    assert set(ranking["name"]) == {"West", "East"}


def test_internal_validation_shown(page):
    _, html, _ = page
    assert "Internal validation" in html and "label_spearman" in html and "0.810" in html


def test_missing_tables_are_named(tmp_path):
    db = make_warehouse(tmp_path, years=(2016,), districts=False)
    html = country_page.render(db, "SYN")
    assert "no district_siscore rows" in html
    assert "no development_regression rows" in html
    assert re.search(r"<h2>Validation against proxies and baselines</h2><div", html)
    png = country_page.validation_chart_png(country_page.validation_rows(db, "SYN"))
    assert png is not None and png[:4] == b"\x89PNG"
    assert country_page.validation_chart_png(country_page.validation_rows(db, "NONE")) is None


def test_one_year_pair_of_the_regression_is_shown(tmp_path):
    """Each year pair is a partition of its own; the page shows the longest pair alone (found by
    review: another pair's coefficients appeared under the first pair's N)."""
    import pandas as pd

    db = make_warehouse(tmp_path)
    reg = wh.query(db, "SELECT * FROM development_regression")
    a, b = int(reg["first_year"].iloc[0]), int(reg["last_year"].iloc[0])
    other = reg.assign(first_year=a + 1, coef=reg["coef"] + 7.0, n=3)
    wh.write(
        db, "development_regression", other, {"country": "SYN", "first_year": a + 1, "last_year": b}
    )
    both = wh.query(db, "SELECT * FROM development_regression")
    assert len(both) == 2 * len(reg)
    shown = country_page.one_pair(both)
    assert set(zip(shown["first_year"], shown["last_year"])) == {(a, b)}
    parsed = _Rows()
    parsed.feed(country_page.render(db, "SYN"))
    cells = [d for d in parsed.data if "coef" in d]
    assert sorted(float(d["coef"]) for d in cells) == sorted(reg["coef"].tolist())
    assert pd.notna(shown["n"]).all() and (shown["n"] != 3).all()


def test_the_page_also_ranks_every_model_on_the_inhabited_tiles(tmp_path):
    """Over all tiles siScore carries the filter's zeros and the baselines do not; the page also
    shows the like-for-like figures over the inhabited tiles (found by review: on SYN the
    feature ranker beats siScore there, which the all-tiles table hid)."""
    db = make_warehouse(tmp_path)
    table = wh.query(db, "SELECT * FROM validation_grid")
    year = int(table["year"].min())
    part = table[table["year"] == year]
    both = pd.concat(
        [part, part.assign(subset="inhabited", spearman_rho=part["spearman_rho"] - 0.3)]
    )
    wh.write(db, "validation_grid", both, {"country": "SYN", "year": year})
    parsed = _Rows()
    parsed.feed(country_page.render(db, "SYN"))
    shown = [d for d in parsed.data if "rho_inhabited" in d]
    assert len(shown) == len(part)
    for d in shown:
        row = part[(part.proxy == d["proxy"]) & (part.model == d["model"])].iloc[0]
        assert float(d["rho_inhabited"]) == pytest.approx(row.spearman_rho - 0.3)
    assert len([d for d in parsed.data if "spearman_rho" in d]) == len(table)  # all tiles


def test_a_page_for_the_configured_years_shows_no_other_year(tmp_path):
    """The countries file dropped 2016: its validation rows, the district ranking's change since
    it and the 2016 -> 2017 regression are not on the page (the fixture has all three)."""
    db = make_warehouse(tmp_path)
    everything = country_page.render(db, "SYN")
    assert "change_since_2016" in everything and 'data-coef="' in everything
    parsed = _Rows()
    html = country_page.render(db, "SYN", [2017])
    parsed.feed(html)
    shown = {int(d["year"]) for d in parsed.data if "proxy" in d and "spearman_rho" in d}
    assert shown == {2017}
    assert "change_since_2016" not in html and "change_since_2017" in html
    assert not [d for d in parsed.data if "coef" in d]
    assert "no development_regression rows" in html
