"""`validation_change` on a warehouse we fill directly: a score that follows the floor area's
change gets rho 1 for every pair; the significant share of still places stays small."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.models.common import checkpoint_digest
from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.fixtures.definitions import definitions_for, materialize_assets

YEARS = (2016, 2017)


def _tables(year: int, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"14/{13903 + i}/6163" for i in range(n)]
    rng = np.random.default_rng(year)
    growth = np.where(np.arange(n) < 20, 0.0, np.arange(n) * 100.0)  # 20 still places
    floor = 1000.0 + (year - YEARS[0]) * growth
    floor[:5] = 0.0  # uninhabited: left out
    base = {"country": "SYN", "year": year, "tile_id": ids, "z": 14, "x": 13903 + np.arange(n)}
    base["y"] = 6163
    proxies = pd.DataFrame(
        {**base, "building_floor_area_m2": floor, "nightlight": floor / 1e4, "inhabited": floor > 0}
    )
    score = np.clip(floor / 1e5 + rng.normal(0, 1e-4, n), 0, 1)
    grid = pd.DataFrame({**base, "raw_score": score, "score": score, "inhabited": floor > 0})
    return proxies, grid


@pytest.fixture
def defs_db(tiny_countries, tmp_path):
    defs, db = definitions_for(tiny_countries, tmp_path)
    for y in YEARS:
        proxies, grid = _tables(y)
        keys = {"country": "SYN", "year": y}
        wh.write(db, "proxies", proxies, keys)
        wh.write(db, "siscore_grid", grid, keys)
        wh.write(db, "feature_baseline", grid[["country", "year", "tile_id", "score"]], keys)
    return defs, db


def test_validation_change_rows_per_model_and_pair(defs_db):
    defs, db = defs_db
    result = materialize_assets(defs, "SYN", "validation_change")
    meta = result.asset_materializations_for_node("validation_change")[0].metadata
    assert meta["siscore_rho_changed"].value > 0.99 and meta["siscore_sign_top"].value == 1.0
    with wh.reader(db) as conn:
        rows = wh.read_frame(conn, "SELECT * FROM validation_change", [])
    assert set(rows["model"]) == {"siscore", "feature_ranker", "nightlight"}
    still = rows[(rows["model"] == "siscore") & (rows["figure"] == "tiles_still")]
    assert still["value"].tolist() == [15.0]
    false = rows[(rows["model"] == "siscore") & (rows["figure"] == "false_change")]
    assert false["value"].iloc[0] <= 0.2


def test_change_readers_refuse_two_scorers_years(defs_db, tmp_path):
    """A year left with an older scorer's rows (its re-score rejected, or not re-run) is named;
    nothing pairs it with the new model's year.  Rows of one scorer, or written before rows
    named their scorer (the fixture above), are paired as before."""
    defs, db = defs_db
    models = tmp_path / "data" / "SYN" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "scorer.pt").write_bytes(b"today's scorer")
    today = checkpoint_digest(models / "scorer.pt")
    for y, made_by in zip(YEARS, ("0123456789abcdef", today)):
        grid = _tables(y)[1].assign(scorer=made_by)
        wh.write(db, "siscore_grid", grid, {"country": "SYN", "year": y})
    named = rf"2016: 0123456789abcdef; 2017: {today}\); materialise siscore_grid again for 2016:"
    for asset, partition in (("validation_change", "SYN"), ("siscore_change", "SYN|2017")):
        with pytest.raises(Exception, match=named):
            materialize_assets(defs, partition, asset)
    with wh.reader(db) as conn:
        assert not wh.table_exists(conn, "siscore_change")  # nothing written
    grid = _tables(2016)[1].assign(scorer=today)  # 2016 scored again by today's scorer
    wh.write(db, "siscore_grid", grid, {"country": "SYN", "year": 2016})
    assert materialize_assets(defs, "SYN|2017", "siscore_change").success


def _districts_table(n_districts: int = 6, per: int = 10, population=None) -> pd.DataFrame:
    """Districts of ``per`` consecutive tiles of the row the tables above use (EPSG:3857)."""
    from shapely.geometry import box

    from siscore_assets.core.imagery.grid import Tile

    rows = []
    for i in range(n_districts):
        left = Tile(14, 13903 + i * per, 6163).bounds_3857()
        right = Tile(14, 13903 + (i + 1) * per - 1, 6163).bounds_3857()
        rows.append(
            {
                "country": "SYN",
                "district_id": i,
                "name": f"d{i}",
                "province_id": 0,
                "province": "p",
                "population": float(population[i]) if population is not None else 0.0,
                "area_km2": 1.0,
                "geometry_wkb": box(left[0], left[1], right[2], left[3]).wkb,
            }
        )
    return pd.DataFrame(rows)


def test_census_link_puts_siscore_in_people_and_validation_change_reports_it(defs_db):
    """A census drawn from a convex link of the first year's scores: `census_link` recovers
    it, and `validation_change` adds the scores in people (`siscore_census`) beside siScore."""
    from siscore_assets.core.analysis.census_link import link_values

    defs, db = defs_db
    n = 60
    x, ids = np.arange(n), [f"14/{13903 + i}/6163" for i in range(n)]
    for y in YEARS:  # levels that differ between districts, so the census can fix the scale
        floor = 2000.0 + 300.0 * x + (y - YEARS[0]) * np.where(x < 20, 0.0, x * 100.0)
        floor[:5] = 0.0
        base = {"country": "SYN", "year": y, "tile_id": ids, "z": 14, "x": 13903 + x, "y": 6163}
        score = floor / 3e4
        inhabited = floor > 0
        if y == YEARS[0]:  # a place kept with its score but uninhabited this year (zero_filter:
            inhabited[7] = False  # false): it holds no people in 2016
        grid = pd.DataFrame({**base, "raw_score": score, "score": score, "inhabited": inhabited})
        proxies = pd.DataFrame(
            {**base, "building_floor_area_m2": floor, "nightlight": floor, "inhabited": floor > 0}
        )
        keys = {"country": "SYN", "year": y}
        wh.write(db, "siscore_grid", grid, keys)
        wh.write(db, "proxies", proxies, keys)
        if y == YEARS[0]:
            people = 900.0 * link_values(8.0, np.where(inhabited, score, 0.0))
    wh.write(
        db,
        "districts",
        _districts_table(population=np.bincount(x // 10, people, 6)),
        {"country": "SYN"},
    )
    result = materialize_assets(defs, "SYN", "census_link", "validation_change")
    meta = result.asset_materializations_for_node("census_link")[0].metadata
    assert meta["status"].value == "ok" and meta["districts"].value == 6
    assert meta["beta"].value == pytest.approx(8.0, abs=0.1)
    assert meta["log_rmse"].value < 1e-3 < meta["log_rmse_linear"].value
    with wh.reader(db) as conn:
        link = wh.read_frame(conn, "SELECT * FROM census_link", [])
        rows = wh.read_frame(conn, "SELECT * FROM validation_change", [])
    assert len(link) == 1 and link["year"].iloc[0] == YEARS[0]
    assert set(rows["model"]) == {"siscore", "siscore_census", "feature_ranker", "nightlight"}
    census = result.asset_materializations_for_node("validation_change")[0].metadata
    assert (
        census["siscore_census_rho_changed"].value > 0.99
    )  # a monotone map of a score that follows
    assert not any(
        r for r in rows.itertuples() if r.model == "siscore_census" and r.figure == "noise_sd"
    )

    # siscore_change counts the change in people with the fitted link
    changed = materialize_assets(defs, f"SYN|{YEARS[1]}", "siscore_change")
    assert changed.success
    fitted = link.iloc[0]
    with wh.reader(db) as conn:
        table = wh.read_frame(conn, "SELECT * FROM siscore_change ORDER BY x", [])

    def people(s):
        return fitted["people_per_unit"] * np.expm1(fitted["beta"] * s) / fitted["beta"]

    inh = (table["score"] > 0).to_numpy()  # 2017's verdict: inhabited where floor > 0
    before = np.where(inh & (table["x"] != 13910), people(table["score_prev"]), 0.0)
    expect = np.where(inh, people(table["score"]), 0.0) - before
    assert table["delta_people_prev"].to_numpy() == pytest.approx(expect)
    assert table["people"].to_numpy() == pytest.approx(np.where(inh, people(table["score"]), 0))
    assert expect[7] == pytest.approx(people(table["score"].iloc[7]))  # all its people are new


def test_census_link_without_a_usable_census_is_not_configured(defs_db):
    defs, db = defs_db
    wh.write(
        db,
        "districts",
        _districts_table(n_districts=3, per=20, population=[1e4] * 3),
        {"country": "SYN"},
    )
    result = materialize_assets(defs, "SYN", "census_link")
    meta = result.asset_materializations_for_node("census_link")[0].metadata
    assert meta["status"].value == "not configured"
    assert "3 district(s) hold scored tiles and a population in 2016 with 80% of their" in (
        meta["note"].value
    )


def test_validation_change_headline_when_no_tile_changed():
    """A truth that never changes (one footprint raster reused for every year) gives NaN
    change figures: the metadata leaves them out instead of failing the asset, also for the
    census model (found by review: the census headline was read unguarded)."""
    from siscore_assets.core.analysis import change
    from siscore_assets.defs.outputs.change import change_headline

    rng = np.random.default_rng(0)
    tiles = [f"14/{i}/0" for i in range(40)]
    years = [2016, 2017, 2018]
    level = rng.random(40)
    score = pd.DataFrame({y: level + 0.01 * rng.standard_normal(40) for y in years}, index=tiles)
    truth = pd.DataFrame({y: 100 * level for y in years}, index=tiles)  # no change at all
    inhabited = pd.DataFrame(True, index=tiles, columns=years)
    table = change.validation_change(
        "XX",
        {"siscore": score, "siscore_census": 50 * np.expm1(3 * score)},
        truth,
        inhabited,
        "floor",
        flags_of={"siscore_census": "siscore"},
    )
    assert table.loc[table["figure"] == "rho_changed", "value"].isna().all()
    meta = change_headline(table, years)
    assert "siscore_census_rho_changed" not in meta and "siscore_rho_changed" not in meta
    shown = meta["figures"].value
    assert "| siscore_census | 2016-2018 |" in shown and "false_change" in shown
