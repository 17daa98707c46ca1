"""Every write to the DuckDB warehouse goes through here, so the write strategy can change
without touching assets.

A partition's rows are replaced inside one transaction: delete the partition's keys, insert the
new frame.  A failed write rolls back and leaves every earlier partition as it was.  DuckDB lets
one process hold a file for writing; a short retry absorbs the lock an analyst or a parallel step
may hold for a moment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


def _is_lock_error(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in LOCK_MARKERS)


@contextlib.contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, retries: int = 40, wait_s: float = 0.25
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, retrying while another process holds its lock."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:  # pragma: no cover - timing dependent
            if not _is_lock_error(exc) or attempt == retries:
                raise
            time.sleep(wait_s)
    try:
        yield conn
    finally:
        conn.close()


def _quote(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a table or view of that name exists."""
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    return bool(row and row[0])


def _ensure_table(conn: duckdb.DuckDBPyConnection, table: str, frame_view: str) -> None:
    """Create the table from the frame's schema, or add the frame's new columns to it."""
    if not table_exists(conn, table):
        conn.execute(f"CREATE TABLE {_quote(table)} AS SELECT * FROM {frame_view} LIMIT 0")
        return
    existing = {r[0]: r[1] for r in conn.execute(f"DESCRIBE {_quote(table)}").fetchall()}
    for name, dtype, *_ in conn.execute(f"DESCRIBE SELECT * FROM {frame_view}").fetchall():
        if name not in existing:
            conn.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {dtype}")
        elif existing[name].strip('"') == "NULL" and dtype.strip('"') != "NULL":
            # An all-missing column in the first partition written gets DuckDB's NULL type;
            # the first partition with real values gives it its type.
            conn.execute(f"ALTER TABLE {_quote(table)} ALTER COLUMN {_quote(name)} TYPE {dtype}")


def replace_partition(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    keys: Mapping[str, Any],
) -> int:
    """Replace the rows of one partition (``keys`` = column -> value) with ``frame``.

    Every row of ``frame`` must carry the partition's key values, so a partition can never write
    rows that belong to another one.
    """
    for col, value in keys.items():
        if col not in frame.columns:
            raise ValueError(f"{table}: frame lacks partition column {col!r}")
        if len(frame) and not (frame[col] == value).all():
            raise ValueError(f"{table}: frame has rows outside partition {col}={value!r}")
    view = "__siscore_frame"
    conn.register(view, frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            _ensure_table(conn, table, view)
            if keys:
                where = " AND ".join(f"{_quote(c)} = ?" for c in keys)
                conn.execute(f"DELETE FROM {_quote(table)} WHERE {where}", list(keys.values()))
            else:
                conn.execute(f"DELETE FROM {_quote(table)}")
            conn.execute(f"INSERT INTO {_quote(table)} BY NAME SELECT * FROM {view}")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.unregister(view)
    return len(frame)


def clear_partition(conn: duckdb.DuckDBPyConnection, table: str, keys: Mapping[str, Any]) -> int:
    """Delete one partition's rows (a partition that now has nothing, e.g. a layer set to
    'none'); a table that does not exist yet has nothing to delete.  Returns rows deleted."""
    if not table_exists(conn, table):
        return 0
    where = " AND ".join(f"{_quote(c)} = ?" for c in keys) or "TRUE"
    n = conn.execute(f"SELECT count(*) FROM {_quote(table)} WHERE {where}", list(keys.values())).fetchone()[0]
    conn.execute(f"DELETE FROM {_quote(table)} WHERE {where}", list(keys.values()))
    return int(n)


def define_union_view(conn: duckdb.DuckDBPyConnection, view: str, tables: list[str],
                      columns: list[str]) -> None:
    """(Re)create ``view`` as the union of those ``tables`` that exist, on ``columns``: one
    analyst-facing name over tables that each have exactly one writer."""
    present = [t for t in tables if table_exists(conn, t)]
    if not present:
        return
    cols = ", ".join(_quote(c) for c in columns)
    body = " UNION ALL ".join(f"SELECT {cols} FROM {_quote(t)}" for t in present)
    conn.execute(f"CREATE OR REPLACE VIEW {_quote(view)} AS {body}")


def read_frame(
    conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> pd.DataFrame:
    return conn.execute(sql, params or []).df()


def read_partition(
    conn: duckdb.DuckDBPyConnection, table: str, keys: Mapping[str, Any], order_by: str | None = None
) -> pd.DataFrame:
    """Rows of one partition; an empty frame if the table does not exist yet."""
    if not table_exists(conn, table):
        return pd.DataFrame()
    where = " AND ".join(f"{_quote(c)} = ?" for c in keys) or "TRUE"
    order = f" ORDER BY {order_by}" if order_by else ""
    return conn.execute(
        f"SELECT * FROM {_quote(table)} WHERE {where}{order}", list(keys.values())
    ).df()


def row_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
    ).fetchall()]
    return {t: int(conn.execute(f"SELECT count(*) FROM {_quote(t)}").fetchone()[0]) for t in tables}
