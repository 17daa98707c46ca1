"""The `district_indicators` asset: not configured without `indicators:`, four tables with one, and
an unusable target fails with one line naming the layer, leaving earlier rows in place."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pandas as pd
from dagster import DagsterInstance, materialize

from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.defs.common.resources import Warehouse
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

TINY = """
default: TINY
countries:
  TINY:
    years: [2016, 2017]
    proxies: none
    covariates: none
    source: {kind: synthetic, seed: 3, x0: 13903, y0: 6163, nx: 16, ny: 16, tile_px: 32,
             n_districts: 24, n_provinces: 3, granule_tiles: 16}
"""


def _setup(tmp_path, extra: str, cloudy: int = 0):
    """TINY with its truth as scores; ``cloudy``: that many tiles unscored in 2016."""
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(TINY) + extra)
    defs, db = definitions_for(countries, tmp_path)
    syn = SyntheticCountry(SyntheticSpec(seed=3, nx=16, ny=16, n_districts=24, years=(2016, 2017)))
    wh = Warehouse(database=str(db))
    for year in (2016, 2017):
        truth = syn.tile_truth(year)
        grid = truth[["tile_id", "z", "x", "y"]].assign(
            country="TINY", year=year, raw_score=truth["development"], inhabited=truth["inhabited"]
        )
        grid["score"] = truth["development"]
        if year == 2016 and cloudy:
            grid = grid.iloc[cloudy:]
        wh.write("siscore_grid", grid, {"country": "TINY", "year": year})
    instance = DagsterInstance.ephemeral()

    def run(names, raise_on_error=True):
        return materialize(
            list(defs.assets),
            selection=select(*names),
            partition_key="TINY",
            resources=dict(defs.resources),
            instance=instance,
            raise_on_error=raise_on_error,
        )

    return db, run


def _count(db, table: str) -> int:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE country = 'TINY'").fetchone()[0]


def test_not_configured_without_indicators(tmp_path):
    _, run = _setup(tmp_path, "")
    result = run(["districts", "district_indicators"])
    mats = result.asset_materializations_for_node("district_indicators")
    assert mats[-1].metadata["status"].value == "not configured"


def test_district_indicators_tables_and_bad_target(tmp_path):
    db, run = _setup(tmp_path, "    indicators: {targets: [population], splits: 6}\n")
    run(["districts", "district_indicators"])
    with duckdb.connect(str(db), read_only=True) as conn:
        d = conn.execute("SELECT * FROM district_indicators").df()
        s = conn.execute("SELECT * FROM indicator_splits").df()
        g = conn.execute("SELECT * FROM indicator_gini").df()
    assert len(d) == 24 and d["prediction"].notna().all() and (d["target"] == "population").all()
    assert (s.groupby("method").size() == 6).all() and "nightlight_sum" not in set(s["method"])
    assert set(g["year"]) == {2016, 2017}
    assert _count(db, "indicator_tiles") == 2 * d["n_tiles"].sum()
    before = {t: _count(db, t) for t in ("district_indicators", "indicator_splits")}

    # a target the layer does not have: one line naming the generated layer; rows kept
    _, run2 = _setup(tmp_path, "    indicators: [gdp]\n")
    result = run2(["district_indicators"], raise_on_error=False)
    assert not result.success
    err = "\n".join(
        e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure
    )
    assert "districts of TINY (generated): no district column 'gdp'" in err
    assert {t: _count(db, t) for t in before} == before
    assert np.isfinite(pd.Series(d["scaling"])).all()


def test_tiles_cloudy_in_the_indicator_year_keep_their_district_in_others(tmp_path):
    """Districts are assigned over every year's tiles: a tile missing from the indicator year's
    grid (cloudy) is still in its district in the other years.  Each district's coverage that
    year is in the table; the labelled districts left out are counted in the metadata."""
    db, run = _setup(tmp_path, "    indicators: {targets: [population], splits: 4}\n", cloudy=3)
    result = run(["districts", "district_indicators"])
    with duckdb.connect(str(db), read_only=True) as conn:
        t = conn.execute("SELECT year, count(*) AS n FROM indicator_tiles GROUP BY year").df()
        d = conn.execute("SELECT * FROM district_indicators").df()
        grid = conn.execute("SELECT year, count(*) AS n FROM siscore_grid GROUP BY year").df()
    n = t.set_index("year")["n"]
    assert grid.set_index("year")["n"].to_dict() == {2016: 253, 2017: 256}
    assert n[2017] == n[2016] + 3 == d["n_tiles"].sum() + 3
    assert d["coverage"].between(0, 1).all() and (d["coverage"] < 1).any()
    assert d["fitted"].sum() == (d["labelled"] & (d["coverage"] >= 0.8)).sum()
    meta = result.asset_materializations_for_node("district_indicators")[-1].metadata
    left = (d["labelled"] & ~d["fitted"]).sum()
    assert meta["left_out_population"].value.startswith("0 with a value <= 0, 0 with no scored")
    assert f"{left} with under 80% of its tiles scored" in meta["left_out_population"].value
