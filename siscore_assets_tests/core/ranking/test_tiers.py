"""Tests for siscore_assets.core.ranking.tiers: exact 1-D k-means tiers, the choice of k, and the
large-input path above EXACT_TIERS_MAX."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siscore_assets.core.ranking import choose_tiers, ensemble_ranks
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
