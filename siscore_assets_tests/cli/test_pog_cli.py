"""``siscore pog``: the commands on the real NK POGs, and every bad input exits 2 with one
``FILE:LINE:COL: problem`` line and writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.core.ranking import (
    kendall_tau_b_matrix,
    parse_line,
    rank_matrix,
    read_pog_lines,
)

NK = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nk_sample" / "annotations"
needs_nk = pytest.mark.skipif(not (NK / "pogs.txt").is_file(), reason="NK sample not present")
runner = CliRunner()
NAMES = ["sat1", "sat2", "sat3", "loc1", "loc2", "loc3", "eco1", "eco2", "eco3", "eco4"]


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


@needs_nk
def test_agreement_real_pogs_is_table_s1(tmp_path):
    out = tmp_path / "t.csv"
    res = runner.invoke(
        app,
        [
            "pog",
            "agreement",
            str(NK / "pogs.txt"),
            "--names",
            str(NK / "annotators.txt"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, index_col=0)
    assert list(table.columns) == NAMES and list(table.index) == NAMES
    np.testing.assert_allclose(table.to_numpy(), table.to_numpy().T)
    np.testing.assert_array_equal(np.diag(table.to_numpy()), 1.0)
    # Table S1's method: tau-b with tied clusters at their averaged rank, every pair
    lines = [ln for ln in (NK / "pogs.txt").read_text().splitlines() if ln.strip()]
    ranks = [parse_line(ln).rank_vector(range(22)) for ln in lines]
    for i in range(10):
        for j in range(10):
            expect = kendalltau(ranks[i], ranks[j], variant="b").statistic
            assert table.iloc[i, j] == pytest.approx(expect, abs=1e-12)
    # full precision: the CSV reads back to exactly the floats the method computes
    tau = kendall_tau_b_matrix(
        rank_matrix(
            list(read_pog_lines(NK / "pogs.txt", NK / "annotators.txt").values()), list(range(22))
        )
    )
    assert np.array_equal(table.to_numpy(), tau)
    assert any(len(cell.split(".")[-1]) > 6 for cell in out.read_text().split(","))
    assert "sat1  1.00  0.83  0.96" in res.stdout and "wrote" in res.stdout


def test_agreement_csv_is_full_precision(tmp_path):
    """Table S1 as written reads back to exactly the float64 tau-b matrix (no 6-decimal cut)."""
    pogs = tmp_path / "pogs.txt"
    pogs.write_text("0>1>2>3>4>5>6\n1=0>3>2>5=6>4\n6>5>4>3>2>1>0\n2>0=1=3>4>6\n")
    out = tmp_path / "s1.csv"
    res = runner.invoke(app, ["pog", "agreement", str(pogs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out, index_col=0)
    tau = kendall_tau_b_matrix(
        rank_matrix(list(read_pog_lines(pogs, None).values()), list(range(7)))
    )
    assert np.array_equal(table.to_numpy(), tau)
    assert not np.array_equal(np.round(tau, 6), tau)  # rounding would have changed the values


@needs_nk
def test_ensemble_real_pogs_with_bottom(tmp_path):
    out = tmp_path / "ensemble.pog"
    res = runner.invoke(
        app,
        [
            "pog",
            "ensemble",
            str(NK / "pogs.txt"),
            "--names",
            str(NK / "annotators.txt"),
            "--bottom",
            "22",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    pog = parse_line(out.read_text(), known_ids=range(23))
    assert pog.nodes == frozenset(range(23)) and pog.is_total()
    assert all(pog.is_less(22, c) for c in range(22))
    for name in NAMES:
        assert re.search(rf"^{name}\s+0\.\d{{4}}$", res.stdout, re.M)
    assert "converged" in res.stdout and "tiers, most developed first" in res.stdout
    edges = tmp_path / "edges.txt"
    res = runner.invoke(
        app, ["pog", "ensemble", str(NK), "--format", "edges", "--tiers", "5", "--out", str(edges)]
    )
    assert res.exit_code == 0, res.output
    assert "5 tiers" in res.stdout and "<" in edges.read_text()


@needs_nk
def test_ensemble_prune(tmp_path):
    out = tmp_path / "e.pog"
    res = runner.invoke(app, ["pog", "ensemble", str(NK), "--prune", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(parse_line(out.read_text()).nodes) == 20 and "pruned" in res.stdout


@needs_nk
def test_check_real_folder_and_files(tmp_path):
    res = runner.invoke(app, ["pog", "check", str(NK), "--ids", "0-21"])
    assert res.exit_code == 0 and "ok: 10 POG(s)" in res.stdout
    one = _write(tmp_path / "ann.pog", "\ufeff# me\r\n 0 < 1 \r\n5<0\r\n1 = 2=3=4=6\r\n")
    res = runner.invoke(app, ["pog", "check", str(one)])
    assert res.exit_code == 0 and "ann: 7 clusters" in res.stdout


# (file name, content, extra args, expected line:col, words in the problem)
BAD = [
    ("pogs.txt", "3>4\n3>40\n", ["--ids", "0-21"], "2:3", "unknown cluster id 40"),
    ("pogs.txt", "3>4=6>3\n", [], "1:7", "duplicate cluster id 3"),
    ("a.pog", "1>2\n2>1\n", [], "2:2", "cycle"),
    ("a.pog", "0<1\n1<2\n2<0\n", [], "3:2", "cycle"),
    ("a.pog", "1=2\n1>2\n", [], "2:2", "contradiction: 1>2 but earlier relations imply 1=2"),
    ("pogs.txt", "3==4\n", [], "1:3", "empty tier"),
    ("pogs.txt", ">5\n", [], "1:1", "empty tier"),
    ("pogs.txt", "3>4>\n", [], "1:4", "empty tier"),
    ("pogs.txt", "3>4;5\n", [], "1:4", "unexpected character ';'"),
    ("pogs.txt", "3>x\n", [], "1:3", "got 'x'"),
    ("a.pog", "\ufeff0<1\r\n  1 ; 2 \r\n", [], "2:5", "unexpected character ';'"),
    ("pogs.txt", "3 > 4\r\n\r\n 1 =  = 2\r\n", [], "3:7", "empty tier"),
    ("a.pog", "# nothing\n\n", [], "1:1", "empty POG"),
    ("pogs.txt", "\n\n", [], "1:1", "no POG lines"),
    ("a.pog", b"3>\xff4".decode("latin-1"), [], "1:1", "not UTF-8"),
]


def _assert_one_error_line(res, path: Path, where: str, needle: str) -> None:
    assert res.exit_code == 2, res.output
    err = res.stderr.splitlines()
    assert len(err) == 1, res.stderr
    assert re.fullmatch(r".+:\d+:\d+: .+", err[0])
    assert err[0].startswith(f"{path}:{where}: "), err[0]
    assert needle in err[0]
    assert res.stdout == ""


@pytest.mark.parametrize("command", ["check", "agreement", "ensemble"])
@pytest.mark.parametrize(("name", "text", "extra", "where", "needle"), BAD)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, command, name, text, extra, where, needle):
    path = tmp_path / name
    if needle == "not UTF-8":
        path.write_bytes(b"3>\xff4\n")
    else:
        _write(path, text)
    out = tmp_path / "out" / "result.csv"
    args = ["pog", command, str(path), *extra]
    if command != "check":
        args += ["--out", str(out)]
    res = runner.invoke(app, args)
    _assert_one_error_line(res, path, where, needle)
    assert not out.parent.exists()


def test_names_file_with_wrong_count(tmp_path):
    pogs = _write(tmp_path / "pogs.txt", "3>4\n1>0\n2>1\n")
    names = _write(tmp_path / "annotators.txt", "ann\nbob\n")
    out = tmp_path / "t.csv"
    for command in ("agreement", "ensemble", "check"):
        res = runner.invoke(
            app,
            [
                "pog",
                command,
                str(pogs),
                "--names",
                str(names),
                *(["--out", str(out)] if command != "check" else []),
            ],
        )
        _assert_one_error_line(res, names, "3:1", "2 annotator names but 3 POG lines")
    names = _write(tmp_path / "annotators.txt", "ann\nbob\nann\n")
    res = runner.invoke(
        app, ["pog", "agreement", str(pogs), "--names", str(names), "--out", str(out)]
    )
    _assert_one_error_line(res, names, "3:1", "duplicate annotator name 'ann'")
    assert not out.exists()


def test_missing_file_and_bad_options(tmp_path):
    res = runner.invoke(app, ["pog", "check", str(tmp_path / "nope.txt")])
    _assert_one_error_line(res, tmp_path / "nope.txt", "1:1", "no such file")
    pogs = _write(tmp_path / "pogs.txt", "3>4\n")
    res = runner.invoke(app, ["pog", "check", str(pogs), "--ids", "0-x"])
    assert res.exit_code == 2 and res.stderr.startswith("--ids:1:1: ")
    res = runner.invoke(
        app, ["pog", "ensemble", str(pogs), "--format", "xml", "--out", str(tmp_path / "e.pog")]
    )
    assert res.exit_code == 2 and res.stderr.startswith("--format:1:1: ")
    assert not (tmp_path / "e.pog").exists()


def test_bottom_cluster_ranked_by_an_annotator(tmp_path):
    pogs = _write(tmp_path / "pogs.txt", "3>4>0\n# c\n3 > 22 > 0\n")
    out = tmp_path / "e.pog"
    res = runner.invoke(app, ["pog", "ensemble", str(pogs), "--bottom", "22", "--out", str(out)])
    _assert_one_error_line(res, pogs, "3:5", "cluster 22 is the --bottom cluster")
    assert not out.exists()


def test_failed_run_keeps_an_earlier_output(tmp_path):
    good = _write(tmp_path / "pogs.txt", "3>4>0\n4>3>0\n")
    out = tmp_path / "t.csv"
    assert runner.invoke(app, ["pog", "agreement", str(good), "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    bad = _write(tmp_path / "bad.txt", "3>4>0\n4>>0\n")
    res = runner.invoke(app, ["pog", "agreement", str(bad), "--out", str(out)])
    _assert_one_error_line(res, bad, "2:3", "empty tier")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "pogs.txt", "t.csv"]


def test_cli_reads_the_same_pogs_as_core(tmp_path):
    pogs = _write(tmp_path / "pogs.txt", "2=1>0\r\n  0 > 1 = 2 \r\n")
    names = _write(tmp_path / "n.txt", "a\nb\n")
    got = read_pog_lines(pogs, names)
    assert list(got) == ["a", "b"] and got["b"] == parse_line("0>1=2")
    out = tmp_path / "t.csv"
    res = runner.invoke(
        app, ["pog", "agreement", str(pogs), "--names", str(names), "--out", str(out)]
    )
    assert res.exit_code == 0
    assert pd.read_csv(out, index_col=0).loc["a", "b"] == pytest.approx(-1.0)


def test_bad_bottom_and_decimals_exit_2_and_write_nothing(tmp_path):
    """--bottom -3 wrote 0=1>2>-3 (which `pog check` refuses); --decimals -1 failed in the
    CSV writer with Python's own message and exit 1."""
    pogs = _write(tmp_path / "pogs.txt", "0=1>2\n")
    out = tmp_path / "e.pog"
    res = runner.invoke(app, ["pog", "ensemble", str(pogs), "--bottom", "-3", "--out", str(out)])
    assert res.exit_code == 2 and res.stderr.strip() == (
        "--bottom:1:1: expected a non-negative cluster id, got -3"
    )
    res = runner.invoke(
        app, ["pog", "ensemble", str(pogs), "--bottom", "9", "--ids", "0-5", "--out", str(out)]
    )
    assert res.exit_code == 2 and res.stderr.startswith("--bottom:1:1: expected one of --ids")
    assert not out.exists()
    csv = tmp_path / "t.csv"
    res = runner.invoke(app, ["pog", "agreement", str(pogs), "--out", str(csv), "--decimals", "-1"])
    assert res.exit_code == 2 and res.stderr.strip() == (
        "--decimals:1:1: expected 0 or more decimals, got -1"
    )
    assert not csv.exists()


def test_agreement_without_shared_clusters_says_so(tmp_path):
    pogs = _write(tmp_path / "pogs.txt", "0>1\n2>3\n")
    res = runner.invoke(app, ["pog", "agreement", str(pogs), "--out", str(tmp_path / "t.csv")])
    assert res.exit_code == 0, res.output
    assert "no shared clusters" in res.stdout and "nan" not in res.stdout
    assert "RuntimeWarning" not in res.output
