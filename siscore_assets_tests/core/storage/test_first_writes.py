"""Two writers that each decide a column's type at once -- the first partitions of a new table, a
new column, the first values of a column that holds none yet -- take turns at the store's lock:
the second sees the first's file and gets the clear type error (or a cast), as any later writer
does.  The interleaving is forced (both pass their type check before either stores a file), not
left to timing."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from siscore_assets.core.storage import catalog, tables, warehouse
from siscore_assets_tests.core.storage.probes import lock_held


def _rows(year: int, **cols) -> pd.DataFrame:
    return pd.DataFrame({"country": ["A"], "year": [year], **{k: [v] for k, v in cols.items()}})


def _both_at_once(monkeypatch, db: Path, first: pd.DataFrame, second: pd.DataFrame) -> list:
    """Write ``first`` and ``second`` (partitions (A, their year)) in two threads: each thread's
    first file write waits until both have checked their types, and the second's then waits
    until the first's write is over.  Returns each writer's error (or None).  The rows' file is
    written outside the store's lock: the lock is never held over the scan."""
    real = warehouse.copy_atomic
    barrier = threading.Barrier(2, timeout=60)
    first_done = threading.Event()
    unlocked: dict[str, bool] = {}

    def after_both_checked(conn, select_sql, final, params=None, row_group_size=None):
        me = threading.current_thread().name
        if me not in unlocked:
            unlocked[me] = not lock_held(catalog.store_root(db))
            barrier.wait()
            if me == "second":
                assert first_done.wait(60)
        return real(conn, select_sql, final, params, row_group_size)

    monkeypatch.setattr(warehouse, "copy_atomic", after_both_checked)
    errors: dict[str, BaseException | None] = {}

    def go(frame: pd.DataFrame) -> None:
        me = threading.current_thread().name
        try:
            warehouse.write(db, "t", frame, {"country": "A", "year": int(frame["year"].iloc[0])})
            errors[me] = None
        except BaseException as exc:  # reported by the test
            errors[me] = exc
        finally:
            if me == "first":
                first_done.set()

    threads = [
        threading.Thread(target=go, args=(frame,), name=name)
        for name, frame in (("first", first), ("second", second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    monkeypatch.setattr(warehouse, "copy_atomic", real)
    assert unlocked == {"first": True, "second": True}
    return [errors["first"], errors["second"]]


def _types(db: Path, column: str) -> set[str]:
    """The type of ``column`` in each partition file of ``t`` that holds values in it (an empty
    partition's column takes its type from the first values)."""
    root = catalog.store_root(db)
    out = set()
    with duckdb.connect() as conn:
        for path in tables.partition_files(root / "t"):
            source = tables.scan_sql([path])
            cols = dict(r[:2] for r in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall())
            if (
                column in cols
                and conn.execute(f"SELECT count({column}) FROM {source}").fetchone()[0]
            ):
                out.add(cols[column])
    return out


CASES = {
    "new table": (None, _rows(2016, score=0.5), _rows(2017, score="high")),
    "new column": (_rows(2015), _rows(2016, note=3), _rows(2017, note="x")),
    "first values": (
        _rows(2015, note=None).astype({"note": object}).iloc[:0],  # `note` typed, no value
        _rows(2016, note=1).astype({"note": "int32"}),  # the same type as that empty column
        _rows(2017, note="x"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_writers_deciding_a_column_type_at_once_leave_one_type(tmp_path, monkeypatch, case):
    db = tmp_path / "w.duckdb"
    catalog.ensure_store(db)  # the store exists: its creation takes the lock too
    before, first, second = CASES[case]
    if before is not None:
        warehouse.write(db, "t", before, {"country": "A", "year": 2015})
    column = first.columns[-1]
    won, lost = _both_at_once(monkeypatch, db, first, second)
    assert won is None
    assert isinstance(lost, ValueError)
    assert f"column {column!r} holds VARCHAR values where the table holds" in str(lost)
    assert "nothing was written" in str(lost)
    assert len(_types(db, column)) == 1  # one type in every file of the table
    kept = warehouse.query(db, f"SELECT year, {column} FROM t WHERE {column} IS NOT NULL")
    assert kept.values.tolist() == first[["year", column]].values.tolist()
    assert not [p for p in (catalog.store_root(db) / "t").iterdir() if p.name.startswith(".")]


def test_the_second_first_writer_is_cast_to_the_first_ones_types(tmp_path, monkeypatch):
    """A column without values in the second writer's rows (an empty change, say) is stored in
    the type the first writer gave it, as in any later write of the table."""
    db = tmp_path / "w.duckdb"
    catalog.ensure_store(db)
    first = _rows(2016, note="x")
    second = _rows(2017, note=None).astype({"note": object})  # DuckDB: INTEGER, no value
    assert _both_at_once(monkeypatch, db, first, second) == [None, None]
    root = catalog.store_root(db)
    with duckdb.connect() as conn:
        types = {
            p.name: conn.execute(
                f"SELECT typeof(note) FROM {tables.scan_sql([p])} LIMIT 1"
            ).fetchone()[0]
            for p in tables.partition_files(root / "t")
        }
    assert types == {
        "country=A,year=2016.parquet": "VARCHAR",
        "country=A,year=2017.parquet": "VARCHAR",
    }
