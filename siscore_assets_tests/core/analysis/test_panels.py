"""The regression panel and design: log distances, the tile-block cluster, and terms left out
(no layer, constant, collinear) named instead of filled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siscore_assets.core.analysis.panels import TILE_BLOCK, regression_design, regression_panel


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
