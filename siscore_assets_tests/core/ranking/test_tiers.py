"""Tests for siscore_assets.core.ranking.tiers: exact 1-D k-means tiers, the choice of k, the
large-input path above EXACT_TIERS_MAX, and the tier ranks and cluster order figures compare to."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from siscore_assets.core.ranking import (
    choose_tiers,
    cluster_order,
    ensemble_ranks,
    path_ranks,
    tier_ranks,
)
from siscore_assets.core.ranking import tiers as tiers_mod

# ---- choose_tiers -------------------------------------------------------------------------


def test_choose_tiers_gap_statistic():
    v = np.array([0.5, 0.0, 0.93, 0.03, 0.53, 0.06, 0.9, 0.56, 0.96])
    assert choose_tiers(v) == [[1, 3, 5], [0, 4, 7], [2, 6, 8]]
    assert choose_tiers(v, seed=1) == choose_tiers(v, seed=1)
    assert choose_tiers(v, n_tiers=1) == [list(range(9))]
    assert choose_tiers(np.array([0.3, 0.3])) == [[0, 1]]
    with pytest.raises(ValueError, match="n_tiers"):
        choose_tiers(np.array([0.3, 0.3]), n_tiers=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=2, max_size=25), st.integers(1, 7))
def test_property_tiers_contiguous_and_never_split_ties(raw, k):
    v = np.array(raw, dtype=float) / 6
    k = min(k, len(set(raw)))
    tiers = choose_tiers(v, n_tiers=k)
    assert len(tiers) == k and sorted(i for t in tiers for i in t) == list(range(len(v)))
    for lower, upper in zip(tiers, tiers[1:]):
        assert v[lower].max() < v[upper].min()  # contiguous, ties kept together


def test_ensemble_of_many_clusters_stays_small_and_agrees_with_the_exact_path():
    truth = np.repeat(np.arange(6), 300).astype(float)  # 1,800 clusters in 6 true tiers
    rng = np.random.default_rng(2)
    ranks = np.array([truth + rng.normal(0, 0.15, truth.size) for _ in range(8)])
    res = ensemble_ranks(ranks, list(range(truth.size)))
    assert len(res.tiers) == 6 and res.pog.is_total()
    assert [sorted(t) for t in res.tiers] == [list(range(i * 300, (i + 1) * 300)) for i in range(6)]
    small = ranks[:, ::15]  # 120 clusters: the exact DP chooses the same tiers
    exact = ensemble_ranks(small, list(range(120)))
    old = tiers_mod.EXACT_TIERS_MAX
    try:
        tiers_mod.EXACT_TIERS_MAX = 10
        approx = ensemble_ranks(small, list(range(120)))
    finally:
        tiers_mod.EXACT_TIERS_MAX = old
    assert approx.tiers == exact.tiers


# ---- the order every figure compares to ----------------------------------------------------------


def test_tier_ranks_give_each_cluster_its_tier_index():
    assert tier_ranks([[3, 1], [0], [2]]) == {3: 0.0, 1: 0.0, 0: 1.0, 2: 2.0}
    assert tier_ranks([]) == {}


def test_path_ranks_average_a_clusters_tier_index_over_its_paths():
    paths = [[[0], [1, 2], [4]], [[0], [2], [3], [4]], [[5], [4]]]
    assert path_ranks(paths) == {0: 0.0, 1: 1.0, 2: 1.0, 3: 2.0, 4: (2 + 3 + 1) / 3, 5: 0.0}
    # a total order has one path: its tier index
    assert path_ranks([[[3, 1], [0], [2]]]) == tier_ranks([[3, 1], [0], [2]])


def test_cluster_order_is_spearman_of_the_clusters_with_both():
    rank = {0: 0.0, 1: 1.0, 2: 2.0, 3: 2.0}
    assert cluster_order({0: 0.1, 1: 0.5, 2: 0.4}, rank) == pytest.approx(0.5)
    assert cluster_order({0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4, 9: 0.0}, rank) == pytest.approx(
        stats.spearmanr([0.1, 0.2, 0.3, 0.4], [0, 1, 2, 2]).statistic
    )  # cluster 9 has no rank: left out
    assert cluster_order({0: 0.9, 1: 0.5, 2: 0.1}, rank) == pytest.approx(-1.0)
    assert np.isnan(cluster_order({0: 0.1, 1: 0.5, 9: 0.2}, rank))  # under 3 clusters with both
