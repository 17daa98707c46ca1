"""``siscore sql``: a result of up to 40 rows is printed whole, each statement's rows are printed,
and no statement writes a file, also one stored by PREPARE and run by EXECUTE."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from siscore_assets.cli import app
from siscore_assets.cli.sql import lock_down
from siscore_assets.core.storage import catalog
from siscore_assets.core.storage import warehouse as wh


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "warehouse.duckdb"
    rows = pd.DataFrame(
        {"country": "SYN", "year": 2016, "tile_id": [f"14/1/{i}" for i in range(3)]}
    )
    wh.write(path, "habitation", rows, {"country": "SYN", "year": 2016})
    return path


def _sql(capsys, db: Path, *args: str) -> tuple[int, str, str]:
    code = app(["sql", "--warehouse", str(db), *args], prog_name="siscore", standalone_mode=False)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_result_of_30_rows_is_printed_whole(db, capsys):
    """DuckDB's box elides rows beyond 20: rows 11-30 of 30 were left out."""
    code, out, err = _sql(capsys, db, "SELECT range AS i FROM range(30)")
    assert code == 0, err
    shown = [int(c) for line in out.splitlines() if (c := line.strip("│ ")).isdigit()]
    assert shown == list(range(30)) and "shown" not in out
    code, out, _ = _sql(capsys, db, "SELECT range AS i FROM range(45)")  # too long for a box
    assert code == 0 and "(45 rows)" in out and "\n44\n(45 rows)" in out


def test_each_statement_prints_its_rows(db, capsys):
    code, out, err = _sql(capsys, db, "--csv", "SELECT 1 AS a; SELECT 2 AS b")
    assert code == 0, err
    assert out.splitlines() == ["a", "1", "b", "2"]


def test_copy_through_prepare_is_refused_and_writes_nothing(db, tmp_path, capsys):
    target = tmp_path / "written.csv"
    for statement in (
        f"PREPARE p AS COPY (SELECT tile_id FROM habitation) TO '{target}'; EXECUTE p",
        f'PREPARE "x AS y" AS COPY (SELECT 1) TO \'{target}\'',
    ):
        code, _, err = _sql(capsys, db, statement)
        assert code == 2 and "siscore sql is read-only: COPY" in err, (statement, err)
    code, out, err = _sql(
        capsys, db, "--csv", "PREPARE q AS SELECT count(*) AS n FROM habitation; EXECUTE q"
    )
    assert code == 0 and out.splitlines() == ["n", "3"], err
    assert not target.exists()


def test_settings_are_locked_but_your_own_files_read(db, tmp_path, capsys):
    """A query log set to a file would be a file written: settings are locked.  An analyst's own
    CSV still joins the warehouse's tables."""
    with catalog.session(db) as conn:
        lock_down(conn)
        assert conn.sql("SELECT count(*) FROM habitation").fetchone() == (3,)
        with pytest.raises(duckdb.Error, match="locked"):
            conn.execute(f"SET log_query_path = '{tmp_path / 'queries.log'}'")
    code, _, err = _sql(capsys, db, f"SET log_query_path = '{tmp_path / 'queries.log'}'")
    assert code == 2 and "locked" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "queries.log").exists()
    mine = tmp_path / "mine.csv"
    mine.write_text("tile_id,people\n14/1/0,12\n14/1/2,30\n")
    query = (
        "SELECT sum(m.people)::INTEGER AS n FROM habitation h "
        f"JOIN read_csv('{mine}') m USING (tile_id)"
    )
    code, out, err = _sql(capsys, db, "--csv", query)
    assert code == 0 and out.splitlines() == ["n", "42"], err
