"""Tests for siscore_assets.core.ranking.graph: the canonical Pog, with_bottom, tier paths and
rank vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siscore_assets.core.ranking import Pog, parse_edges, parse_line
from siscore_assets_tests.core.ranking.conftest import needs_nk

# ---- canonical form -----------------------------------------------------------------------


def layered(width: int, depth: int) -> Pog:
    """depth layers of width incomparable clusters, every cluster below the whole next layer."""
    layers = [list(range(d * width, (d + 1) * width)) for d in range(depth)]
    less = {(lo, hi) for a, b in zip(layers, layers[1:]) for lo in a for hi in b}
    return Pog(frozenset(range(width * depth)), frozenset(less))


def test_constructor_canonicalises():
    a = Pog(frozenset({0, 1, 2}), frozenset({(0, 1), (1, 2), (0, 2)}))
    b = Pog(frozenset({0, 1, 2}), frozenset({(0, 1), (1, 2)}), (frozenset({2}),))
    assert a == b and hash(a) == hash(b)
    assert a.less == frozenset({(0, 1), (1, 2)})
    with pytest.raises(ValueError, match="cycle"):
        Pog(frozenset({0, 1}), frozenset({(0, 1), (1, 0)}))
    with pytest.raises(ValueError, match="inside one equivalence class"):
        Pog(frozenset({0, 1}), frozenset({(0, 1)}), (frozenset({0, 1}),))


# ---- with_bottom and tier paths -----------------------------------------------------------


def test_with_bottom():
    p = parse_edges("0<1\n0<2\n7\n").with_bottom(9)
    assert all(p.is_less(9, n) for n in (0, 1, 2, 7))
    assert p.less == frozenset({(0, 1), (0, 2), (9, 0), (9, 7)})
    with pytest.raises(ValueError):
        p.with_bottom(0)


def test_tier_paths_small():
    p = parse_edges("0<1\n0<2\n1=3\n7\n")
    assert p.tier_paths() == [[[0], [1, 3]], [[0], [2]], [[7]]]
    assert p.with_bottom(9).tier_paths() == [[[9], [0], [1, 3]], [[9], [0], [2]], [[9], [7]]]


def _assert_increasing(pog: Pog, path: list[list[int]]) -> None:
    for lo_tier, hi_tier in zip(path, path[1:]):
        assert lo_tier == sorted(lo_tier)
        assert all(pog.is_less(lo, hi) for lo in lo_tier for hi in hi_tier)


@needs_nk
def test_tier_paths_nk_ensemble_with_bottom(nk_result):
    pog = nk_result.pog.with_bottom(22)
    paths = pog.tier_paths()
    assert paths  # a total preorder: exactly one path through every tier
    assert len(paths) == 1 and len(paths[0]) == len(nk_result.tiers) + 1
    for path in paths:
        assert path[0] == [22]
        _assert_increasing(pog, path)
    assert sorted(c for t in paths[0] for c in t) == list(range(23))


def _restricted(pog: Pog, keep: set[int]) -> Pog:
    """A total POG cut down to the clusters in keep (least developed tier first)."""
    tiers = [[int(c) for c in t.split("=")] for t in reversed(pog.to_line().split(">"))]
    return Pog.from_tiers([[c for c in t if c in keep] for t in tiers if set(t) & keep])


@needs_nk
def test_tier_paths_real_partial_pog(nk):
    # sat1's urban order beside eco3's rural order, incomparable across: a real partial order
    urban = _restricted(nk["sat1"], set(range(11)))
    rural = _restricted(nk["eco3"], set(range(11, 22)))
    pog = Pog(urban.nodes | rural.nodes, urban.less | rural.less, urban.equal + rural.equal)
    assert not pog.is_total()
    paths = pog.with_bottom(22).tier_paths()
    assert len(paths) == 2
    for path in paths:
        assert path[0] == [22]
        _assert_increasing(pog.with_bottom(22), path)
    assert {c for t in paths[0] for c in t} == set(range(11)) | {22}


def test_tier_paths_sampling_bound():
    p = layered(3, 9).with_bottom(99)  # 3**9 = 19683 paths
    assert p.count_tier_paths() == 3**9
    full = p.tier_paths(max_paths=3**9)
    assert len(full) == 3**9 and len({str(x) for x in full}) == 3**9
    sample = p.tier_paths(max_paths=500, seed=3)
    assert len(sample) == 500 and len({str(x) for x in sample}) == 500
    assert sample == p.tier_paths(max_paths=500, seed=3)
    assert sample != p.tier_paths(max_paths=500, seed=4)
    where = {str(x): i for i, x in enumerate(full)}
    positions = [where[str(x)] for x in sample]  # every sampled path is a real path ...
    assert positions == sorted(positions)  # ... returned in enumeration order
    for path in sample:
        assert path[0] == [99] and len(path) == 10
        _assert_increasing(p, path)


def test_tier_paths_astronomical_count():
    p = layered(2, 70)  # 2**70 paths: beyond int64
    assert p.count_tier_paths() == 2**70
    sample = p.tier_paths(max_paths=50, seed=1)
    assert len(sample) == 50 and len({str(x) for x in sample}) == 50
    for path in sample:
        assert len(path) == 70
        _assert_increasing(p, path)
    assert sample == p.tier_paths(max_paths=50, seed=1)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=25),
            st.integers(1, 12),
            st.integers(0, 3),
        )
    )
)
def test_property_paths_with_bottom(case):
    n, pairs, max_paths, seed = case
    pog = Pog(frozenset(range(n)), frozenset((a, b) for a, b in pairs if a < b)).with_bottom(99)
    assert parse_edges(pog.to_edges()) == pog  # serialisation round trip with the bottom
    total = pog.count_tier_paths()
    paths = pog.tier_paths(max_paths=max_paths, seed=seed)
    assert len(paths) == min(total, max_paths) and len({str(p) for p in paths}) == len(paths)
    for path in paths:
        assert path[0] == [99]
        _assert_increasing(pog, path)
        top = path[-1][0]
        assert not any(pog.is_less(top, c) for c in pog.nodes)  # ends at a most-developed class
    if total <= max_paths:  # full enumeration covers every cluster
        assert {c for p in paths for t in p for c in t} == set(pog.nodes)


# ---- rank vectors -------------------------------------------------------------------------


def test_rank_vector_ties_averaged():
    p = parse_line("3=4>1>0=2")
    r = p.rank_vector([0, 1, 2, 3, 4, 9])
    np.testing.assert_array_equal(r[:5], [1.5, 3.0, 1.5, 4.5, 4.5])
    assert np.isnan(r[5])
    np.testing.assert_array_equal(p.rank_vector([3, 1]), [2.0, 1.0])


def test_rank_vector_partial_order_is_the_expected_position():
    p = parse_edges("0<1\n1<2\n0<3\n")  # 3 is incomparable to 1 and 2: each half a place
    np.testing.assert_array_equal(p.rank_vector([0, 1, 2, 3]), [1.0, 2.5, 3.5, 3.0])


def test_rank_vector_of_a_partial_order_counts_open_pairs_as_half():
    """Two chains the annotator kept apart are not ordered by depth (3 below 1 before), and a
    bare id, related to nothing, says nothing (it was ranked least developed)."""
    from siscore_assets.core.ranking import parse_edges

    two_chains = parse_edges("0<1<2\n3<4<5\n")
    np.testing.assert_array_equal(two_chains.rank_vector(range(6)), [2.5, 3.5, 4.5, 2.5, 3.5, 4.5])
    bare = parse_edges("0<1<2<3<4\n5\n")
    np.testing.assert_array_equal(bare.rank_vector(range(6)), [1, 2, 3, 4, 5, np.nan])
    assert not bare.stated_pairs(range(6))[-1]  # the pair (4, 5)
    tiers = Pog.from_tiers([[0], [1, 2], [3]])
    np.testing.assert_array_equal(tiers.rank_vector([0, 1, 2, 3, 9]), [1, 2.5, 2.5, 4, np.nan])
