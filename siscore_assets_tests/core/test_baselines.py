"""Data-guided POG baselines: clusters ordered by a proxy's average, tiles scored by tier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core import baselines
from siscore_assets.core.pog import PogError


def test_guided_tiers_order_ties_and_bottom():
    tiers = baselines.guided_tiers({0: 5.0, 1: 1.0, 2: 5.0, 3: np.nan, 4: 9.0, 9: 100.0}, bottom=9)
    assert tiers == [[9], [1], [0, 2], [4]]  # uninhabited first, 3 (no value) left out
    assert baselines.tier_scores(tiers) == {9: 0.0, 1: 1 / 3, 0: 2 / 3, 2: 2 / 3, 4: 1.0}
    assert baselines.tiers_to_line(tiers) == "4>0=2>1>9"
    assert baselines.tiers_from_line("4>0=2>1", bottom=9) == tiers
    with pytest.raises(PogError):
        baselines.tiers_from_line("4>>1")


def test_guided_scores_from_cluster_means():
    members = pd.DataFrame({"year": [2016, 2016, 2017, 2017], "tile_id": ["a", "b", "a", "c"],
                            "cluster_id": [0, 1, 0, 2]})
    proxies = pd.DataFrame({"year": [2016, 2016, 2017, 2017], "tile_id": ["a", "b", "a", "c"],
                            "nightlight": [10.0, 0.0, 20.0, 3.0]})
    means = baselines.cluster_means(members, proxies, "nightlight")
    assert means.to_dict() == {0: 15.0, 1: 0.0, 2: 3.0}
    s = baselines.guided_scores(members, baselines.guided_tiers(means, bottom=1))
    assert list(s["score"]) == [1.0, 0.0, 1.0, 0.5]
    assert list(s["tier"]) == [2, 0, 2, 1]
