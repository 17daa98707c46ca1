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


def _setup(tmp_path, extra: str):
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
