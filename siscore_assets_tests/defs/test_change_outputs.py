"""`validation_change` on a warehouse we fill directly: a score that follows the floor area's
change gets rho 1 for every pair; the significant share of still places stays small."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

YEARS = (2016, 2017)


def _tables(year: int, n: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"14/{13903 + i}/6163" for i in range(n)]
    rng = np.random.default_rng(year)
    growth = np.where(np.arange(n) < 20, 0.0, np.arange(n) * 100.0)  # 20 still places
    floor = 1000.0 + (year - YEARS[0]) * growth
    floor[:5] = 0.0  # uninhabited: left out
    base = {"country": "SYN", "year": year, "tile_id": ids}
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
    result = materialize(
        list(defs.assets),
        selection=select("validation_change"),
        partition_key="SYN",
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    meta = result.asset_materializations_for_node("validation_change")[0].metadata
    assert meta["siscore_rho_changed"].value > 0.99 and meta["siscore_sign_top"].value == 1.0
    with wh.reader(db) as conn:
        rows = wh.read_frame(conn, "SELECT * FROM validation_change", [])
    assert set(rows["model"]) == {"siscore", "feature_ranker", "nightlight"}
    still = rows[(rows["model"] == "siscore") & (rows["figure"] == "tiles_still")]
    assert still["value"].tolist() == [15.0]
    false = rows[(rows["model"] == "siscore") & (rows["figure"] == "false_change")]
    assert false["value"].iloc[0] <= 0.2
