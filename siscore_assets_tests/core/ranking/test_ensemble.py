"""Tests for siscore_assets.core.ranking.ensemble: robust re-weighting, the fast path against the
reference, masking and pruning."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.ranking import (
    ensemble,
    ensemble_ranks,
    normalise_ranks,
    parse_line,
    reweight_fast,
    reweight_reference,
)
from siscore_assets_tests.core.ranking.conftest import EXAMPLE, IDS, needs_nk

# ---- ensemble -----------------------------------------------------------------------------


@needs_nk
def test_ensemble_real_nk(nk, nk_result):
    res = nk_result
    assert res.names == list(nk)
    assert res.pog.nodes == frozenset(IDS) and res.pog.is_total()
    assert parse_line(res.pog.to_line(), known_ids=IDS) == res.pog
    assert res.weights.shape == (10,) and res.weights.sum() == pytest.approx(1.0)
    assert (res.weights > 0).all() and res.converged
    assert res.consensus.min() >= 0 and res.consensus.max() <= 1
    assert sorted(c for t in res.tiers for c in t) == IDS
    tier_of = {c: i for i, t in enumerate(res.tiers) for c in t}
    for i in IDS:  # tiers are contiguous in consensus order
        for j in IDS:
            if res.consensus[i] < res.consensus[j]:
                assert tier_of[i] <= tier_of[j]
    assert 2 <= len(res.tiers) <= 12
    # urban clusters (0-10) are, on consensus, above rural ones (11-21)
    assert res.consensus[:11].mean() > res.consensus[11:].mean()


@needs_nk
def test_reversed_annotator_gets_lowest_weight(nk):
    pogs = list(nk.values())
    line = nk["sat1"].to_line()
    reversed_sat1 = parse_line(">".join(line.split(">")[::-1]))
    rng = np.random.default_rng(7)
    careless = parse_line(">".join(str(c) for c in rng.permutation(22)))
    res = ensemble([*pogs, reversed_sat1, careless], IDS, names=[*nk, "reversed", "careless"])
    assert int(np.argmin(res.weights)) == 10
    assert res.weights[11] < res.weights[:10].min()
    assert res.weights[10] < 0.5 * res.weights[:10].min()


def test_adversary_weight_drops_synthetic():
    truth = np.arange(20, dtype=float)
    rng = np.random.default_rng(1)
    honest = [truth + rng.normal(0, 1.5, 20) for _ in range(6)]
    ranks = np.array([*honest, truth[::-1]])
    res = ensemble_ranks(ranks, list(range(20)))
    assert int(np.argmin(res.weights)) == 6
    plain = ranks.mean(axis=0)
    # re-weighting pulls the consensus towards the honest majority
    assert np.corrcoef(res.consensus, truth)[0, 1] > np.corrcoef(plain, truth)[0, 1]


@needs_nk
def test_ensemble_deterministic(nk, nk_result):
    again = ensemble(list(nk.values()), IDS, names=list(nk))
    np.testing.assert_array_equal(again.weights, nk_result.weights)
    assert again.tiers == nk_result.tiers and again.pog == nk_result.pog


@needs_nk
def test_ensemble_n_tiers_override(nk):
    res = ensemble(list(nk.values()), IDS, n_tiers=4)
    assert len(res.tiers) == 4 and res.pog.to_line().count(">") == 3
    with pytest.raises(ValueError, match="n_tiers"):
        ensemble(list(nk.values()), IDS, n_tiers=99)


def test_ensemble_masks_missing_clusters():
    a = parse_line("3>2>1>0")
    b = parse_line("3>2>1")  # silent on 0
    c = parse_line("2>1>0")  # silent on 3
    res = ensemble([a, b, c], [0, 1, 2, 3], n_tiers=4)
    assert res.tiers == [[0], [1], [2], [3]]
    with pytest.raises(ValueError, match="no POG ranks"):
        ensemble([b, c], [0, 1, 2, 3, 9])


def test_ensemble_identical_annotators_equal_weights():
    p = parse_line(EXAMPLE)
    res = ensemble([p, p, p], IDS)
    np.testing.assert_allclose(res.weights, 1 / 3)
    assert res.iterations == 1
    assert res.pog == p  # the agreement criterion recovers the annotators' own 10 tiers


def test_ensemble_scales_to_many_annotators():
    rng = np.random.default_rng(0)
    truth = np.arange(22, dtype=float)
    ranks = truth + rng.normal(0, 3, size=(20_000, 22))
    ranks[::50] = truth[::-1]  # 2% adversaries
    res = ensemble_ranks(ranks, IDS)  # speed is measured by benchmarks/pog_bench.py
    assert res.weights[::50].max() < np.median(res.weights)


# ---- fast path, pruning -------------------------------------------------------------------


def random_ranks(a_n: int, c_n: int, seed: int, missing: float = 0.0) -> np.ndarray:
    """Noisy tiered rankings of a hidden order, 5% reversed, some clusters left unranked."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    score = rng.permutation(c_n) + rng.normal(0, c_n / 6, size=(a_n, c_n))
    score[rng.random(a_n) < 0.05] *= -1
    ranks = rankdata(np.ceil(rankdata(score, axis=1) / 3), axis=1)
    if missing:
        ranks[rng.random(ranks.shape) < missing] = np.nan
        ranks[:, 0] = 1.0  # every annotator ranks something
    return ranks


@pytest.mark.parametrize(
    ("a_n", "c_n", "missing"),
    [(2000, 22, 0.0), (2000, 22, 0.2), (10, 3000, 0.0), (7, 40, 0.3), (3, 5, 0.0)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_reference(a_n, c_n, missing, seed):
    r = random_ranks(a_n, c_n, seed, missing)
    mask = ~np.isnan(r)
    x = np.where(mask, normalise_ranks(r), 0.0)
    w_ref, c_ref, it_ref, ok_ref = reweight_reference(x, mask)
    for layout in (np.ascontiguousarray, np.asfortranarray):
        w, c, it, ok = reweight_fast(layout(x), None if mask.all() else mask)
        assert ok and ok_ref and abs(it - it_ref) <= 1
        np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(c, c_ref, atol=2e-6)


@needs_nk
def test_fast_path_matches_reference_on_nk(nk, nk_result):
    slow = ensemble(list(nk.values()), IDS, names=list(nk), fast=False)
    np.testing.assert_allclose(nk_result.weights, slow.weights, rtol=1e-4)
    np.testing.assert_allclose(nk_result.consensus, slow.consensus, atol=2e-6)
    assert slow.tiers == nk_result.tiers and slow.iterations == nk_result.iterations


def test_prune_drops_the_disputed_cluster():
    base = ["9>8>7>6>5>4>2>1>0", "9>8>7>6>5>4>2>1>0", "9>8>7>6>5>4>2>1=0", "9>8>7=6>5>4>2>1>0"]
    lines = [f"3>{ln}" if k % 2 else f"{ln}>3" for k, ln in enumerate(base * 2)]
    pogs = [parse_line(ln) for ln in lines]
    ids = list(range(10))
    res = ensemble(pogs, ids, prune=1)
    assert res.pruned == [3] and 3 not in res.pog.nodes and len(res.pog.nodes) == 9
    assert int(np.argmax(res.disagreement)) == 3
    full = ensemble(pogs, ids)
    assert full.pruned == [] and full.pog.nodes == frozenset(ids)
    np.testing.assert_array_equal(full.weights, res.weights)
    with pytest.raises(ValueError, match="prune"):
        ensemble(pogs, ids, prune=10)


@needs_nk
def test_careless_and_adversarial_get_the_lowest_weights_fast_and_reference(nk):
    rng = np.random.default_rng(11)
    careless = [parse_line(">".join(map(str, rng.permutation(22)))) for _ in range(2)]
    adversary = parse_line(">".join(nk["eco1"].to_line().split(">")[::-1]))
    pogs = [*nk.values(), *careless, adversary]
    for fast in (True, False):
        res = ensemble(pogs, IDS, fast=fast)
        assert set(np.argsort(res.weights)[:3]) == {10, 11, 12}
        assert res.weights[12] == res.weights.min()
