"""Tests for siscore_assets.core.pog: syntax, errors, paths, ranks, agreement, ensemble."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from siscore_assets.core.pog import (
    Pog,
    PogError,
    choose_tiers,
    ensemble,
    ensemble_ranks,
    kendall_tau_b_matrix,
    parse_edges,
    parse_line,
    parse_pog_text,
    rank_matrix,
    read_annotation_folder,
    reweight_fast,
    reweight_reference,
)

NK = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nk_sample" / "annotations"
IDS = list(range(22))
EXAMPLE = "3=4=6>1=2=7>0>5=8=9>10>14=16=20>15=18>11=13>12=17=19>21"

needs_nk = pytest.mark.skipif(not (NK / "pogs.txt").is_file(), reason="NK sample not present")


@pytest.fixture(scope="module")
def nk() -> dict[str, Pog]:
    if not (NK / "pogs.txt").is_file():
        pytest.skip("NK sample not present")
    return read_annotation_folder(NK, known_ids=IDS)


@pytest.fixture(scope="module")
def nk_result(nk):
    return ensemble(list(nk.values()), IDS, names=list(nk))


def layered(width: int, depth: int) -> Pog:
    """depth layers of width incomparable clusters, every cluster below the whole next layer."""
    layers = [list(range(d * width, (d + 1) * width)) for d in range(depth)]
    less = {(lo, hi) for a, b in zip(layers, layers[1:]) for lo in a for hi in b}
    return Pog(frozenset(range(width * depth)), frozenset(less))


# ---- syntax and round trips ---------------------------------------------------------------


def test_parse_line_example():
    p = parse_line(EXAMPLE)
    assert p.nodes == frozenset(range(22))
    assert frozenset({3, 4, 6}) in p.equal
    assert p.is_less(1, 3) and p.is_less(21, 3) and not p.is_less(3, 4)
    assert (1, 3) in p.less and (21, 3) not in p.less  # stored transitively reduced
    assert p.to_line() == EXAMPLE
    assert parse_edges(p.to_edges()) == p


def test_edge_list_readme_form():
    p = parse_edges("0<1\n5<0\n1=2=3=4=6\n")
    assert p.is_less(5, 6) and p.is_less(0, 2)
    assert p.to_line() == "1=2=3=4=6>0>5"
    assert p.to_edges() == "0<1\n5<0\n1=2=3=4=6\n"
    assert parse_edges("1>0\n0>5\n6=4=3=2=1") == p


def test_incomparable_and_isolated_round_trip():
    p = parse_edges("0<1\n0<2\n7\n")
    assert not p.is_total()
    with pytest.raises(ValueError, match="total preorder"):
        p.to_line()
    assert p.to_edges() == "0<1\n0<2\n7\n"
    assert parse_edges(p.to_edges()) == p


@needs_nk
def test_real_lines_round_trip(nk):
    for pog in nk.values():
        assert parse_line(pog.to_line()) == pog
        assert parse_edges(pog.to_edges()) == pog
        assert parse_pog_text(pog.to_edges()) == pog


def test_constructor_canonicalises():
    a = Pog(frozenset({0, 1, 2}), frozenset({(0, 1), (1, 2), (0, 2)}))
    b = Pog(frozenset({0, 1, 2}), frozenset({(0, 1), (1, 2)}), (frozenset({2}),))
    assert a == b and hash(a) == hash(b)
    assert a.less == frozenset({(0, 1), (1, 2)})
    with pytest.raises(ValueError, match="cycle"):
        Pog(frozenset({0, 1}), frozenset({(0, 1), (1, 0)}))
    with pytest.raises(ValueError, match="inside one equivalence class"):
        Pog(frozenset({0, 1}), frozenset({(0, 1)}), (frozenset({0, 1}),))


total_preorders = st.lists(
    st.lists(st.integers(0, 40), min_size=1, max_size=4), min_size=1, max_size=8
).map(lambda tiers: [t for t in _dedupe(tiers) if t]).filter(bool)


def _dedupe(tiers: list[list[int]]) -> list[list[int]]:
    seen: set[int] = set()
    out = []
    for t in tiers:
        out.append(sorted(set(t) - seen))
        seen |= set(t)
    return out


@settings(max_examples=60, deadline=None)
@given(total_preorders)
def test_property_line_edges_round_trip(tiers):
    p = Pog.from_tiers(tiers)
    assert parse_line(p.to_line()) == p
    assert parse_edges(p.to_edges()) == p
    assert parse_pog_text(p.to_line()) == p
    r = p.rank_vector(sorted(p.nodes))
    assert np.isclose(r.sum(), len(p.nodes) * (len(p.nodes) + 1) / 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12).flatmap(
    lambda n: st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20)
    .map(lambda pairs: (n, pairs))))
def test_property_dag_edges_round_trip(case):
    n, pairs = case
    less = {(a, b) for a, b in pairs if a < b}  # a < b by id: always acyclic
    p = Pog(frozenset(range(n)), frozenset(less))
    q = parse_edges(p.to_edges())
    assert q == p
    for a, b in less:
        assert q.is_less(a, b)


# ---- tolerance ----------------------------------------------------------------------------


def test_crlf_bom_whitespace_comments():
    assert parse_line("\ufeff  3 = 4 > 1 \r\n") == parse_line("3=4>1")
    text = "\ufeff# header\r\n\r\n  0 < 1  # comment\r\n5<0\r\n 1 = 2 \r\n"
    assert parse_edges(text) == parse_edges("0<1\n5<0\n1=2")
    assert parse_pog_text("\ufeff\r\n# c\r\n 3=4 > 1\r\n\r\n") == parse_line("3=4>1")
    assert parse_pog_text("3>4\n4>5\n").is_less(5, 3)


# ---- errors name line and column ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "col", "needle"),
    [
        ("3==4", 3, "empty tier"),
        (">5", 1, "empty tier"),
        ("3>4>", 4, "empty tier"),
        ("3 > 4 = 3", 9, "duplicate cluster id 3"),
        ("3>4,5", 4, "unexpected character ','"),
        ("3>x>5", 3, "integer cluster id, got 'x'"),
        ("3>4.5", 3, "got '4.5'"),
        ("3>-1", 3, "got '-1'"),
        ("3 4", 3, "missing operator"),
        ("3<4", 2, "'<' is not allowed"),
        ("3>40", 3, "unknown cluster id 40 (known ids: 0..21)"),
        ("   ", 1, "empty POG"),
    ],
)
def test_line_errors(text, col, needle):
    with pytest.raises(PogError) as info:
        parse_line(text, source="pogs.txt", line_no=7, known_ids=IDS)
    err = info.value
    assert (err.source, err.line, err.col) == ("pogs.txt", 7, col)
    assert needle in err.problem
    assert str(err) == f"pogs.txt:7:{col}: {err.problem}"
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("text", "line", "col", "needle"),
    [
        ("0<1\n1<2\n2<0\n", 3, 2, "cycle: 2<0 but earlier relations imply 2>0"),
        ("1>2\n2>1\n", 2, 2, "cycle"),
        ("1=2\n1>2\n", 2, 2, "contradiction: 1>2 but earlier relations imply 1=2"),
        ("1<2\n3=4\n2 = 1\n", 3, 3, "contradiction: 2=1 but earlier relations imply 2>1"),
        ("0<1<0", 1, 4, "cycle"),
        ("4<4", 1, 2, "cannot be < itself"),
        ("0<1\n\n  # c\n0<<1\n", 4, 3, "empty tier"),
        ("0<1\n0<a\n", 2, 3, "got 'a'"),
        ("0<1\n0<99\n", 2, 3, "unknown cluster id 99"),
        ("\ufeff0<1\r\n1 ; 2\r\n", 2, 3, "unexpected character ';'"),
        ("# only a comment\n", 1, 1, "empty POG"),
    ],
)
def test_edge_errors(text, line, col, needle):
    with pytest.raises(PogError) as info:
        parse_edges(text, source="x.pog", known_ids=IDS)
    err = info.value
    assert (err.line, err.col) == (line, col), str(err)
    assert needle in err.problem
    assert str(err).startswith(f"x.pog:{line}:{col}: ")


def test_pog_error_pickles():
    err = PogError("a.pog", 2, 3, "bad")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == "a.pog:2:3: bad" and again.col == 3


def test_parse_pog_text_reports_physical_line():
    with pytest.raises(PogError) as info:
        parse_pog_text("# c\n\n3>>4\n", source="s.pog")
    assert (info.value.line, info.value.col) == (3, 3)


# ---- annotation folders -------------------------------------------------------------------


@needs_nk
def test_read_real_folder(nk):
    assert list(nk) == ["sat1", "sat2", "sat3", "loc1", "loc2", "loc3",
                        "eco1", "eco2", "eco3", "eco4"]
    assert nk["sat1"].to_line() == EXAMPLE
    for pog in nk.values():
        assert pog.nodes <= frozenset(IDS)


def test_folder_layouts(tmp_path):
    (tmp_path / "pogs.txt").write_text("3>4\r\n\r\n1=2>0\r\n", encoding="utf-8")
    assert list(read_annotation_folder(tmp_path)) == ["annotator_1", "annotator_2"]
    (tmp_path / "annotators.txt").write_text("ann\nbob\n")
    (tmp_path / "zed.pog").write_text("0<1\n1<2\n")
    got = read_annotation_folder(tmp_path)
    assert list(got) == ["ann", "bob", "zed"]
    assert got["bob"] == parse_line("1=2>0") and got["zed"].is_less(0, 2)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_annotation_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no POGs found"):
        read_annotation_folder(tmp_path)
    (tmp_path / "pogs.txt").write_text("3>4\n1>0\n")
    (tmp_path / "annotators.txt").write_text("only_one\n")
    with pytest.raises(PogError, match="annotators.txt:2:1: 1 annotator names but 2 POG lines"):
        read_annotation_folder(tmp_path)
    (tmp_path / "annotators.txt").write_text("a\nzed\n")
    (tmp_path / "zed.pog").write_text("0<1\n")
    with pytest.raises(PogError, match="zed.pog:1:1: annotator name 'zed' is already used"):
        read_annotation_folder(tmp_path)
    (tmp_path / "annotators.txt").write_text("a\na\n")
    with pytest.raises(PogError, match="duplicate annotator name 'a'"):
        read_annotation_folder(tmp_path)
    (tmp_path / "annotators.txt").write_text("a\nb\n")
    (tmp_path / "pogs.txt").write_text("3>4\n1>99\n")
    with pytest.raises(PogError, match=r"pogs.txt:2:3: unknown cluster id 99"):
        read_annotation_folder(tmp_path, known_ids=IDS)


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


# ---- rank vectors and Kendall tau-b -------------------------------------------------------


def test_rank_vector_ties_averaged():
    p = parse_line("3=4>1>0=2")
    r = p.rank_vector([0, 1, 2, 3, 4, 9])
    np.testing.assert_array_equal(r[:5], [1.5, 3.0, 1.5, 4.5, 4.5])
    assert np.isnan(r[5])
    np.testing.assert_array_equal(p.rank_vector([3, 1]), [2.0, 1.0])


def test_rank_vector_partial_order_uses_depth():
    p = parse_edges("0<1\n1<2\n0<3\n")  # 3 is incomparable to 1 and 2: depth 1, like 1
    np.testing.assert_array_equal(p.rank_vector([0, 1, 2, 3]), [1.0, 2.5, 4.0, 2.5])


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
            expect = kendalltau(r[a, both], r[b, both], variant="b").statistic \
                if both.sum() >= 2 else np.nan
            if np.isnan(expect):
                assert np.isnan(tau[a, b])
            else:
                assert tau[a, b] == pytest.approx(expect, abs=1e-12)


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


# ---- Table S1, fast path, pruning ---------------------------------------------------------


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


@pytest.mark.parametrize(("a_n", "c_n", "missing"),
                         [(2000, 22, 0.0), (2000, 22, 0.2), (10, 3000, 0.0), (7, 40, 0.3),
                          (3, 5, 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_path_matches_reference(a_n, c_n, missing, seed):
    from siscore_assets.core.pog import _normalise_ranks

    r = random_ranks(a_n, c_n, seed, missing)
    mask = ~np.isnan(r)
    x = np.where(mask, _normalise_ranks(r), 0.0)
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


def test_rank_matrix_layout_follows_the_long_axis():
    many = rank_matrix([parse_line("1>0")] * 5, [0, 1])
    assert many.flags.f_contiguous and not many.flags.c_contiguous
    assert rank_matrix([parse_line("1>0")], [0, 1, 2]).flags.c_contiguous


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


def test_ensemble_of_many_clusters_stays_small_and_agrees_with_the_exact_path():
    from siscore_assets.core import pog as pog_mod

    truth = np.repeat(np.arange(6), 300).astype(float)  # 1,800 clusters in 6 true tiers
    rng = np.random.default_rng(2)
    ranks = np.array([truth + rng.normal(0, 0.15, truth.size) for _ in range(8)])
    res = ensemble_ranks(ranks, list(range(truth.size)))
    assert len(res.tiers) == 6 and res.pog.is_total()
    assert [sorted(t) for t in res.tiers] == [list(range(i * 300, (i + 1) * 300)) for i in range(6)]
    small = ranks[:, ::15]  # 120 clusters: the exact DP chooses the same tiers
    exact = ensemble_ranks(small, list(range(120)))
    old = pog_mod.EXACT_TIERS_MAX
    try:
        pog_mod.EXACT_TIERS_MAX = 10
        approx = ensemble_ranks(small, list(range(120)))
    finally:
        pog_mod.EXACT_TIERS_MAX = old
    assert approx.tiers == exact.tiers


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10).flatmap(
    lambda n: st.tuples(st.just(n),
                        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=25),
                        st.integers(1, 12), st.integers(0, 3))))
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
