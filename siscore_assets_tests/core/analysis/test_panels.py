"""The regression panel and design: log distances, the tile-block cluster, and terms left out
(no layer, constant, collinear) named instead of filled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from siscore_assets.core.analysis import surveys, validation
from siscore_assets.core.analysis.panels import (
    DISTRICT_PROXIES,
    TILE_BLOCK,
    JoinedTiles,
    district_skip_pairs,
    regression_design,
    regression_panel,
    validation_grid_table,
)
from siscore_assets.core.imagery.grid import Tile, block_bounds_3857


def _grid(scores: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tile_id": [f"14/{100 + i}/200" for i in range(len(scores))],
            "score": scores,
            "inhabited": True,
        }
    )


def test_panel_has_log_distances_tile_blocks_and_district_controls():
    n = 8
    cov = pd.DataFrame(
        {
            "tile_id": [f"14/{100 + i}/200" for i in range(n)],
            "z": 14,
            "x": [100 + i for i in range(n)],
            "y": 200,
            "dist_port_km": np.linspace(1, 8, n),
            "near_mine": [True, False] * 4,
            "district_id": [1] * n,
            "province": ["P"] * n,
        }
    )
    dist = pd.DataFrame({"district_id": [1], "population": [1000.0], "area_km2": [50.0]})
    panel = regression_panel(_grid([0.1] * n), _grid(list(np.linspace(0.1, 0.9, n))), cov, dist)
    assert np.allclose(panel["log_dist_port_km"], np.log(np.linspace(1, 8, n)))
    assert panel["tile_block"].tolist() == [
        f"{(100 + i) // TILE_BLOCK}_{200 // TILE_BLOCK}" for i in range(n)
    ]
    assert panel["log_district_area"].iloc[0] == np.log(50.0)
    regs, dropped, fe = regression_design(
        panel, ["log_dist_port_km", "near_mine", "log_dist_capital_km"]
    )
    assert regs == ["log_dist_port_km", "near_mine"] and fe is None
    # no capital layer; one district: its controls are the intercept again
    assert dropped == ["log_dist_capital_km", "log_district_population", "log_district_area"]


def test_collinear_terms_are_left_out_in_order():
    panel = pd.DataFrame(
        {
            "a": np.arange(10.0),
            "b": np.arange(10.0) * 2 + 1,
            "c": [0.0] * 5 + [1.0] * 5,
            "log_district_population": [0.0] * 5 + [1.0] * 5,
            "log_district_area": [0.0] * 5 + [3.0] * 5,
            "province": ["x"] * 10,
        }
    )
    regs, dropped, _ = regression_design(panel, ["a", "b", "c"])
    assert regs == ["a", "c"] and dropped == ["b", "log_district_population", "log_district_area"]


def test_nightlight_up_is_nan_where_either_year_has_no_nightlight():
    """Model (4) must run on the tiles model (2) runs on: no first-year nightlight, no 'up'."""
    cov = pd.DataFrame({"tile_id": [f"14/{100 + i}/200" for i in range(3)], "district_id": 1})
    dist = pd.DataFrame({"district_id": [1], "population": [1000.0], "area_km2": [50.0]})
    ids = cov["tile_id"]
    first = pd.DataFrame({"tile_id": ids, "nightlight": [1.0, np.nan, 2.0]})
    last = pd.DataFrame({"tile_id": ids, "nightlight": [5.0, 5.0, np.nan]})
    panel = regression_panel(_grid([0.2] * 3), _grid([0.3] * 3), cov, dist, first, last)
    assert panel["nightlight_up"].tolist()[0] == 1.0
    assert panel["nightlight_up"].isna().tolist() == panel["delta_log_nightlight"].isna().tolist()
    assert panel["nightlight_up"].isna().tolist() == [False, True, True]


def _survey_country(n_clusters: int = 20, seed: int = 0):
    """A 16 x 16 block with random scores and a building proxy, and ``n_clusters`` survey
    clusters of random values, displaced by DHS's rule and spread over the block's tiles."""
    rng = np.random.default_rng(seed)
    tiles = [Tile(14, 13903 + i, 6163 + j) for j in range(16) for i in range(16)]
    grid = pd.DataFrame(
        {"tile_id": [t.tile_id for t in tiles], "z": 14, "x": [t.x for t in tiles],
         "y": [t.y for t in tiles], "inhabited": rng.uniform(size=len(tiles)) < 0.8}
    )  # fmt: skip
    left, bottom, right, top = block_bounds_3857(14, 13903, 6163, 16, 16)
    x = rng.uniform(left + 5000, right - 5000, n_clusters)
    y = rng.uniform(bottom + 5000, top - 5000, n_clusters)
    lat = np.degrees(2 * np.arctan(np.exp(y / surveys.EARTH_RADIUS_M)) - np.pi / 2)
    pts = pd.DataFrame(
        {"x": x, "y": y, "lat": lat, "value": rng.normal(size=n_clusters), "year": 2016,
         "urban": rng.uniform(size=n_clusters) < 0.3, "weight": 1.0}
    )  # fmt: skip
    tab, clusters = surveys.survey_tables(pts, {2016: grid}, surveys.Displacement(), min_mass=0.3)
    frame = grid.assign(
        country="T", year=2016, status="ok", score_siscore=rng.uniform(size=len(grid)),
        proxy_building_floor_area_m2=rng.uniform(size=len(grid)),
        proxy_dhs=grid["tile_id"].map(tab.set_index("tile_id")["value"]),
    )  # fmt: skip
    frame["inhabited"] = frame["inhabited"].astype("boolean")
    joined = JoinedTiles(
        frame, ["siscore"], ["building_floor_area_m2", "dhs"], {"siscore": (256, 0)}
    )
    return joined, tab, clusters


def test_survey_is_validated_per_cluster_not_per_tile():
    """The tiles a displaced cluster is spread over share its one value: the survey's rho, p and
    CI are over clusters (each one's expected score), n is the clusters; other proxies' rows are
    as they were."""
    joined, tab, clusters = _survey_country()
    plain = validation_grid_table(joined, "T", 2016, seed=0)
    table = validation_grid_table(joined, "T", 2016, seed=0, survey=("dhs", clusters))
    assert table[["subset", "model", "proxy"]].equals(plain[["subset", "model", "proxy"]])
    other = table["proxy"] != "dhs"
    pd.testing.assert_frame_equal(table[other], plain[other])
    row = table[(table["proxy"] == "dhs") & (table["subset"] == "all")].iloc[0]
    assert row["n"] == 20 and row["n_dropped"] == 0
    assert plain[(plain["proxy"] == "dhs") & (plain["subset"] == "all")]["n"].iloc[0] == len(tab)
    per = surveys.cluster_scores(clusters, joined.frame, ["score_siscore"])
    expect = stats.spearmanr(per["score_siscore"], per["value"])
    assert row["spearman_rho"] == pytest.approx(expect.statistic)
    assert row["p_value"] == pytest.approx(expect.pvalue)
    lo, hi, m = validation.spearman_ci(
        per["score_siscore"].to_numpy(), per["value"].to_numpy(), expect.statistic,
        n_boot=validation.DEFAULT_BOOT, seed=0, alpha=0.05,
    )  # fmt: skip
    assert (row["ci_low"], row["ci_high"], row["boot_m"]) == pytest.approx((lo, hi, m))
    # inhabited: each cluster's expectation over its inhabited tiles only
    inh = table[(table["proxy"] == "dhs") & (table["subset"] == "inhabited")].iloc[0]
    per_inh = surveys.cluster_scores(
        clusters, joined.frame, ["score_siscore"], keep_col="inhabited"
    )
    ok = per_inh["score_siscore"].notna()
    assert inh["n"] == ok.sum() and inh["dropped_no_score"] == (~ok).sum()
    assert inh["spearman_rho"] == pytest.approx(
        stats.spearmanr(per_inh["score_siscore"][ok], per_inh["value"][ok]).statistic
    )
    # a year without clusters: the survey's rows are there, empty
    none = validation_grid_table(joined, "T", 2016, seed=0, survey=("dhs", clusters.iloc[:0]))
    assert (none.loc[none["proxy"] == "dhs", "n"] == 0).all()


def test_siscore_is_not_validated_against_what_guided_its_pog():
    """`models.guided_annotator: dhs` ranked the clusters by the survey: siScore's rows against
    it would partly measure its own training data, so they are left out (a building-area row,
    not guided, stays)."""
    joined, _, clusters = _survey_country()
    table = validation_grid_table(joined, "T", 2016, seed=0, survey=("dhs", clusters), guided="dhs")
    pairs = set(zip(table["model"], table["proxy"]))
    assert ("siscore", "dhs") not in pairs and ("siscore", "building_floor_area_m2") in pairs
    tiles = validation_grid_table(joined, "T", 2016, seed=0, guided="building_floor_area_m2")
    assert ("siscore", "building_floor_area_m2") not in set(zip(tiles["model"], tiles["proxy"]))
    district = dict(district_skip_pairs("building_floor_area_m2"))
    assert district["siscore"] == DISTRICT_PROXIES["building_floor_area_m2"][0]
    assert "siscore" not in dict(district_skip_pairs())


def test_district_controls_need_enough_districts():
    rng = np.random.default_rng(0)

    def panel(district):
        return pd.DataFrame(
            {
                "a": rng.normal(size=len(district)),
                "district_id": district,
                "log_district_population": 10.0 + district * 0.1,
                "log_district_area": 3.0 + np.sqrt(district),
            }
        )

    two = np.r_[np.zeros(91), np.ones(1)]  # PRK: one tile's centre across the border
    regs, dropped, _ = regression_design(panel(two), ["a"])
    assert regs == ["a"] and dropped == ["log_district_population", "log_district_area"]
    six = np.repeat(np.arange(6.0), 10)
    regs, dropped, _ = regression_design(panel(six), ["a"])
    assert regs == ["a", "log_district_population", "log_district_area"] and dropped == []


def test_a_density_needs_the_whole_district():
    """An AOI that cuts a district holds part of its proxy sum: divided by the whole district's
    area it was a density too low by the coverage; it is left empty, a mean is kept."""
    import geopandas as gpd
    from shapely.geometry import box

    from siscore_assets.core.analysis.districts import aggregate_by_district, aggregate_coverage
    from siscore_assets.core.analysis.panels import district_panel
    from siscore_assets.core.imagery.grid import block_bounds_3857, tiles_in_block

    left, bottom, right, top = block_bounds_3857(14, 13903, 6163, 8, 4)
    mid = (left + right) / 2
    layer = gpd.GeoDataFrame(
        {"district_id": [0, 1]},
        geometry=[box(left, bottom, mid, top), box(mid, bottom, right, top)],
        crs="EPSG:3857",
    )
    tiles = [t for t in tiles_in_block(14, 13903, 6163, 8, 4) if t.x < 13903 + 5]  # cuts 1
    frame = pd.DataFrame(
        {"z": 14, "x": [t.x for t in tiles], "y": [t.y for t in tiles], "score_m": 0.5,
         "proxy_population": 2.0}
    )  # fmt: skip
    agg = aggregate_by_district(frame, ["score_m", "proxy_population"], layer)
    coverage = aggregate_coverage(agg, layer, 14)
    assert coverage.to_dict() == {0: 1.0, 1: 0.25}
    panel, pairs = district_panel(agg, ["m"], ["population"], {}, coverage=coverage)
    column = dict(pairs)["population"]
    assert np.isfinite(panel.loc[0, column]) and np.isnan(panel.loc[1, column])
    assert panel["m"].tolist() == [0.5, 0.5] and panel["coverage"].tolist() == [1.0, 0.25]
