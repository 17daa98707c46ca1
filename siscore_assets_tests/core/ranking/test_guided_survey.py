"""A survey-guided POG: survey tile values joined onto cluster members rank the clusters."""

from __future__ import annotations

import pandas as pd

from siscore_assets.core.ranking import guided


def test_survey_values_guide_a_pog():
    members = pd.DataFrame(
        {
            "year": 2016,
            "tile_id": [f"14/1/{i}" for i in range(6)],
            "cluster_id": [0, 0, 1, 1, 2, 2],
        }
    )
    values = guided.proxy_values(members, [], table=members[["year", "tile_id"]])
    survey = pd.DataFrame(
        {"year": 2016, "tile_id": ["14/1/0", "14/1/2", "14/1/3", "14/1/4"],
         "value": [0.9, 0.5, 0.4, 0.1]}
    )  # fmt: skip
    out = guided.with_survey(values, survey, "dhs")
    assert out["dhs"].isna().sum() == 2 and len(out) == 6
    pogs, means = guided.guided_tables("X", out, ["dhs"], [0, 1, 2], tolerance=0.02)
    order = means.sort_values("tier")["cluster_id"].tolist()
    assert order == [2, 1, 0]  # least developed first
    assert pogs["n_tiers"].iloc[0] == 3
