"""Tests for siscore_assets.core.ranking.parse: both syntaxes, round trips, tolerance, located
errors and annotation folders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siscore_assets.core.ranking import (
    Pog,
    PogError,
    parse_edges,
    parse_line,
    parse_pog_text,
    read_annotation_folder,
)
from siscore_assets_tests.core.ranking.conftest import EXAMPLE, IDS, needs_nk

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


total_preorders = (
    st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=4), min_size=1, max_size=8)
    .map(lambda tiers: [t for t in _dedupe(tiers) if t])
    .filter(bool)
)


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
@given(
    st.integers(2, 12).flatmap(
        lambda n: st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20
        ).map(lambda pairs: (n, pairs))
    )
)
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
    assert list(nk) == [
        "sat1",
        "sat2",
        "sat3",
        "loc1",
        "loc2",
        "loc3",
        "eco1",
        "eco2",
        "eco3",
        "eco4",
    ]
    assert nk["sat1"].to_line() == EXAMPLE
    for pog in nk.values():
        assert pog.nodes <= frozenset(IDS)


def test_folder_layouts(tmp_path):
    (tmp_path / "pogs.txt").write_text("3>4\r\n\r\n1=2>0\r\n", encoding="utf-8")
    assert list(read_annotation_folder(tmp_path)) == ["annotator_1", "annotator_2"]
    (tmp_path / "annotators.txt").write_text("ann\nbob\n")
    (tmp_path / "zed.pog").write_text("0<1\n1<2\n")
    (tmp_path / ".zed.123.abcd1234.tmp.pog").write_text("0<1\n")  # a killed writer's file
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
    with pytest.raises(
        PogError, match=r"annotators.txt:2:1: duplicate annotator name 'a' \(also line 1\)"
    ):
        read_annotation_folder(tmp_path)
    (tmp_path / "annotators.txt").write_text(
        "# nobody named yet\n"
    )  # a names file that names no line
    (tmp_path / "zed.pog").unlink()
    (tmp_path / "yan.pog").write_text("0<1\n")
    with pytest.raises(PogError, match="0 annotator names but 2 POG lines"):
        read_annotation_folder(tmp_path)  # never quietly read as yan alone
    (tmp_path / "yan.pog").unlink()
    (tmp_path / "annotators.txt").write_text("a\nb\n")
    (tmp_path / "pogs.txt").write_text("3>4\n1>99\n")
    with pytest.raises(PogError, match=r"pogs.txt:2:3: unknown cluster id 99"):
        read_annotation_folder(tmp_path, known_ids=IDS)
