"""Tests for siscore_assets.core.ranking.agreement: the rank matrix and Kendall tau-b (Table S1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from siscore_assets.core.ranking import kendall_tau_b_matrix, parse_line, rank_matrix
from siscore_assets_tests.core.ranking.conftest import IDS, needs_nk

# ---- Kendall tau-b ------------------------------------------------------------------------


@needs_nk
def test_kendall_matrix(nk):
    r = rank_matrix(list(nk.values()), IDS)
    tau = kendall_tau_b_matrix(r)
    assert tau.shape == (10, 10)
    np.testing.assert_allclose(tau, tau.T)
    np.testing.assert_array_equal(np.diag(tau), 1.0)
    for a, b in [(0, 1), (3, 8), (4, 9)]:
        expect = kendalltau(r[a], r[b], variant="b").statistic
        assert tau[a, b] == pytest.approx(expect, abs=1e-12)


def test_kendall_matrix_with_missing_matches_scipy():
    rng = np.random.default_rng(0)
    r = rng.integers(0, 5, size=(6, 15)).astype(float)
    r[rng.random(r.shape) < 0.3] = np.nan
    r[5] = np.nan
    r[5, :1] = 1.0  # one cluster only: undefined against everyone
    tau = kendall_tau_b_matrix(r)
    for a in range(6):
        for b in range(6):
            if a == b:
                assert tau[a, b] == 1.0
                continue
            both = ~np.isnan(r[a]) & ~np.isnan(r[b])
            expect = (
                kendalltau(r[a, both], r[b, both], variant="b").statistic
                if both.sum() >= 2
                else np.nan
            )
            if np.isnan(expect):
                assert np.isnan(tau[a, b])
            else:
                assert tau[a, b] == pytest.approx(expect, abs=1e-12)


@needs_nk
def test_table_s1_every_pair_matches_scipy(nk):
    """The seeds carry no Table S1 numbers, so the method is checked pair by pair: Kendall
    tau-b with tied clusters at their averaged rank (scipy's tau-b handles the ties)."""
    r = rank_matrix(list(nk.values()), IDS)
    tau = kendall_tau_b_matrix(r)
    for a in range(10):
        for b in range(10):
            expect = kendalltau(r[a], r[b], variant="b").statistic
            assert tau[a, b] == pytest.approx(expect, abs=1e-12)
    off = tau[~np.eye(10, dtype=bool)]
    assert off.min() > 0.5 and off.max() < 1.0  # annotators agree, none identical


# ---- rank matrix --------------------------------------------------------------------------


def test_rank_matrix_layout_follows_the_long_axis():
    many = rank_matrix([parse_line("1>0")] * 5, [0, 1])
    assert many.flags.f_contiguous and not many.flags.c_contiguous
    assert rank_matrix([parse_line("1>0")], [0, 1, 2]).flags.c_contiguous


def test_incomparable_pairs_are_neither_agreement_nor_disagreement():
    """A keeps a rural chain and an urban chain apart (the method's 'incomparable'); B is a
    total order agreeing with every relation A states: over the pairs both stated, tau is 1
    (over every pair, reading A's depth as an order, it was 0.45)."""
    from siscore_assets.core.ranking import agreement_matrix, parse_edges

    a = parse_edges("0<1<2\n3<4<5\n")
    b = parse_line("5>4>3>2>1>0")
    tau = agreement_matrix([a, b], list(range(6)))
    assert tau[0, 1] == pytest.approx(1.0)
    c = parse_line("0>1>2>3>4>5")  # reverses A's every stated pair
    assert agreement_matrix([a, c], list(range(6)))[0, 1] == pytest.approx(-1.0)
    # total orders: the same figure as before
    full = [parse_line("5>4>3>2>1>0"), parse_line("5>3>4>2>0=1")]
    ids = list(range(6))
    np.testing.assert_array_equal(
        agreement_matrix(full, ids), kendall_tau_b_matrix(rank_matrix(full, ids))
    )
