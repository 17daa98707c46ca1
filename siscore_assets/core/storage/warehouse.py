"""Every read and write of the warehouse goes through here, so the write strategy can change
without touching assets.

Layout (``tables.py``): one Parquet file per partition of each table, written to a temporary
name and renamed into place, so re-materialising a partition replaces exactly its rows, any
number of processes can write different partitions at once, and a writer killed with ``kill -9``
leaves the partition's previous file intact.  A write takes the store's lock
(``catalog.store_lock``) only where two writers would otherwise each act on what they saw before
the other, and only for a moment: to rename into place a partition that decides a column's type
(the table's first, a new column, a column's first values -- its rows are written before, outside
the lock), and to rewrite a file that also holds rows of other partitions.  Reads run in an
in-memory DuckDB connection with a view per table over its files.  The analysts'
``warehouse.duckdb`` holds only such views (``catalog.py``); nothing here ever opens it, so an
analyst holding it open cannot block the pipeline.  Transient failures (a file renamed under a
reader, I/O) are retried with backoff.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from . import catalog
from .tables import (
    STALE_TMP_S,
    SUFFIX,
    VIEWS_DIR,
    copy_atomic,
    fsync,
    key_text,
    list_tables,
    literal,
    memory,
    parse_partition,
    partition_files,
    partition_name,
    quote,
    read_json,
    retry,
    scan_sql,
    sweep_tmp,
    table_dir,
    tmp_sibling,
    view_specs,
    write_json_atomic,
)

FRAME = "__siscore_frame"
SPOOL_DIR = ".spool"  # under the store root: never a table (table names start with a letter)
MISSING_TABLE = re.compile(r'Table with name "?([A-Za-z0-9_]+)"? does not exist')


def check_frame(table: str, frame: pd.DataFrame, keys: Mapping[str, Any]) -> None:
    """Every row of ``frame`` must carry the partition's key values, so a partition can never
    write rows that belong to another one."""
    for col, value in keys.items():
        if col not in frame.columns:
            raise ValueError(f"{table}: frame lacks partition column {col!r}")
        if len(frame) and not (frame[col] == value).all():
            raise ValueError(f"{table}: frame has rows outside partition {col}={value!r}")


def _where(keys: Mapping[str, Any]) -> str:
    return " AND ".join(f"{quote(c)} = ?" for c in keys) or "TRUE"


def _overlapping(folder: Path, keys: Mapping[str, Any]) -> list[tuple[Path, bool]]:
    """Partition files that hold rows of the partition ``keys``: (file, wholly inside it).  A file
    written with fewer key columns (e.g. a migrated ``country`` file when ``country, year`` is
    replaced) holds some of its rows; files of other partitions are not listed."""
    want = {c: key_text(v) for c, v in keys.items()}
    out = []
    for path in partition_files(folder):
        have = parse_partition(path.name)
        if any(c in have and have[c] != v for c, v in want.items()):
            continue
        out.append((path, all(c in have for c in want)))
    return out


def _store_partition(
    database: str | os.PathLike[str],
    table: str,
    keys: Mapping[str, Any],
    select_sql: str,
    conn: duckdb.DuckDBPyConnection,
    params: list[Any] | None = None,
    columns: list[list[str]] | None = None,
    row_group_size: int | None = None,
) -> None:
    """Write ``select_sql``'s rows as the partition's file, then drop (or trim) any other file
    that held rows of this partition; publish the table to the analysts if it is new."""
    root = catalog.ensure_store(database)
    folder = table_dir(root, table)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / partition_name(keys)
    retry(lambda: copy_atomic(conn, select_sql, final, params, row_group_size))
    _after_store(database, root, table, keys, final, conn, columns)


def _after_store(
    database: str | os.PathLike[str],
    root: Path,
    table: str,
    keys: Mapping[str, Any],
    final: Path,
    conn: duckdb.DuckDBPyConnection,
    columns: list[list[str]] | None,
) -> None:
    """The partition's file is in place: drop the files that held only its rows (finer ones),
    remove its rows from files that hold other partitions' rows too (coarser ones), publish the
    table to the analysts if it is new.  A coarser file (one migrated before tables were split
    by all their partition columns, one a country-wide clear left) is rewritten under the
    store's lock: two sibling partitions trimming it at once would each rewrite it from the
    copy they read, and the second would put back the first's old rows beside its new file."""
    folder, shared = final.parent, False
    for path, inside in _overlapping(folder, keys):
        if path == final:
            continue
        if inside:
            path.unlink(missing_ok=True)
        else:
            shared = True
    if shared:
        with catalog.store_lock(root):
            for path, inside in _overlapping(folder, keys):  # as they are now, under the lock
                if path == final or inside:
                    continue
                retry(
                    lambda p=path: copy_atomic(
                        conn,
                        f"SELECT * FROM {scan_sql([p])} WHERE NOT coalesce({_where(keys)}, FALSE)",
                        p,
                        list(keys.values()),
                    )
                )
    sweep_tmp(folder)
    catalog.publish_if_changed(database, root, table, columns)


#: Families of DuckDB types a column may not move between once it holds values: a year written
#: as '2019' would turn the whole table's `year` into text, a flag written as 0.0 / 1.0 its
#: booleans into numbers (the analysts' union view takes the widest type of all partitions).
TYPE_FAMILIES = {
    "BOOLEAN": "boolean",
    **dict.fromkeys(
        ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"),
        "number",
    ),
    **dict.fromkeys(("VARCHAR", "BLOB"), "text"),
    **dict.fromkeys(("DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"), "time"),
}  # fmt: skip


def _family(duck_type: str) -> str:
    base = duck_type.strip('"').split("(")[0].upper()
    return TYPE_FAMILIES.get(base, base)


def _ident(name: str) -> str:
    """Any column name as a SQL identifier (partition columns go through ``quote``)."""
    return '"' + name.replace('"', '""') + '"'


def _valued_columns(conn: duckdb.DuckDBPyConnection, files: list[Path]) -> set[str]:
    """Columns that hold a value in some of ``files``, read from the files' footers (no rows are
    read); a column whose statistics say nothing counts as holding none."""
    rows = conn.execute(
        "SELECT split_part(path_in_schema, ', ', 1) FROM parquet_metadata("
        f"[{', '.join(literal(f) for f in files)}]) GROUP BY 1 "
        "HAVING bool_or(stats_null_count IS NOT NULL AND num_values > stats_null_count)"
    ).fetchall()
    return {r[0] for r in rows}


def _others(root: Path, table: str, keys: Mapping[str, Any]) -> list[Path]:
    """The table's partition files other than the partition's own."""
    own = partition_name(keys)
    return [p for p in partition_files(table_dir(root, table)) if p.name != own]


def _decides_types(
    conn: duckdb.DuckDBPyConnection,
    root: Path,
    table: str,
    keys: Mapping[str, Any],
    source: str,
) -> bool:
    """Whether storing ``source`` decides a column's type for the table: it is the table's
    first partition, or gives some column its first values (the other partitions hold none in
    it, or lack it).  Only the columns the others hold no value in are counted in ``source``."""
    others = _others(root, table, keys)
    if not others:
        return True
    valued = _valued_columns(conn, others)
    fresh = [
        r[0]
        for r in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        if r[0] not in valued
    ]
    if not fresh:
        return False
    counts = conn.execute(
        f"SELECT {', '.join(f'count({_ident(c)})' for c in fresh)} FROM {source}"
    ).fetchone()
    return any(counts)


def _check_types(
    conn: duckdb.DuckDBPyConnection,
    root: Path,
    table: str,
    keys: Mapping[str, Any],
    source: str = FRAME,
) -> str:
    """The SELECT that stores ``source``'s rows (the registered frame, or a spool's scan) in the
    table's column types, judged against the table's other partitions; refuses (nothing is
    written) values that cannot be stored in them (as an INSERT into a table would) or a column
    moving to another family of types (text / number / boolean / time) while both sides hold
    values.  A column with no value in ``source`` (a first year's empty change, an empty frame)
    is stored in the table's type, so it never retypes the table; one that holds only NULLs so
    far takes its type from the first real values."""
    plain = f"SELECT * FROM {source}"
    others = _others(root, table, keys)
    if not others:
        return plain
    old = dict(r[:2] for r in conn.execute(f"DESCRIBE SELECT * FROM {scan_sql(others)}").fetchall())
    casts = []
    for col, new_type, *_ in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall():
        want = old.get(col)
        if want is None or want == new_type or want.strip('"') == "NULL":
            continue
        counts = f"SELECT count({quote(col)}) FROM {{}}"
        if not conn.execute(counts.format(source)).fetchone()[0]:
            casts.append(f"CAST({quote(col)} AS {want}) AS {quote(col)}")
            continue
        if not conn.execute(counts.format(scan_sql(others))).fetchone()[0]:
            continue
        if _family(want) != _family(new_type):
            raise ValueError(
                f"{table}: column {col!r} holds {new_type} values where the table holds "
                f"{want}; nothing was written"
            )
        stored = f"TRY_CAST({quote(col)} AS {want})"
        changed = f" OR {stored} != {quote(col)}" if _family(want) == "number" else ""  # 1.5 -> 2
        bad = conn.execute(
            f"SELECT any_value({quote(col)}), count(*) FROM {source} "
            f"WHERE {quote(col)} IS NOT NULL AND ({stored} IS NULL{changed})"
        ).fetchone()
        if bad[1]:
            raise ValueError(
                f"{table}: column {col!r} holds {new_type} values that are not {want} "
                f"(the table's type), e.g. {bad[0]!r}; nothing was written"
            )
    return f"SELECT * REPLACE ({', '.join(casts)}) FROM {source}" if casts else plain


def _snapshot(folder: Path, own: str) -> list[tuple[str, int, int, int]]:
    """The table's other partition files as they are now (name, inode, mtime, size): a file
    stored, replaced or removed since shows as a difference."""
    out = []
    for path in partition_files(folder):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if path.name != own:
            out.append((path.name, st.st_ino, st.st_mtime_ns, st.st_size))
    return out


def _columns(conn: duckdb.DuckDBPyConnection, select: str) -> list[list[str]]:
    return [[r[0], r[1]] for r in conn.execute(f"DESCRIBE {select}").fetchall()]


def _check_and_store(
    database: str | os.PathLike[str],
    table: str,
    keys: Mapping[str, Any],
    conn: duckdb.DuckDBPyConnection,
    source: str,
    row_group_size: int | None = None,
) -> None:
    """Store ``source``'s rows as the partition, in the table's types (:func:`_check_types`).

    A write that decides a column's type -- the table's first partition, a new column, a
    column's first values -- is checked against the files there before it; two such writers at
    once would each pass and leave files of two types.  So it writes its rows to a staged file
    outside the lock (the scan of a big spool), then under the store's lock renames it into
    place if no other partition was stored since its check, or else checks the staged rows
    again first: the second of two writers sees the first's file and gets the type error (or
    the cast) any later writer gets.  The lock is held for a listing and a rename (a second
    check only after such a race)."""
    root = catalog.ensure_store(database)
    folder = table_dir(root, table)
    final = folder / partition_name(keys)
    seen = _snapshot(folder, final.name)
    # In this order: a column this write does not give its first values had them before the
    # check, which therefore judged the write against them.
    decides = _decides_types(conn, root, table, keys, source)
    select = _check_types(conn, root, table, keys, source)
    columns = _columns(conn, select)
    if not decides:
        _store_partition(
            database, table, keys, select, conn, columns=columns, row_group_size=row_group_size
        )
        return
    folder.mkdir(parents=True, exist_ok=True)
    staged = tmp_sibling(final)
    try:
        retry(lambda: copy_atomic(conn, select, staged, None, row_group_size))
        with catalog.store_lock(root):
            cast = None
            if _snapshot(folder, final.name) != seen:  # another partition was stored meanwhile
                rows = scan_sql([staged])
                again = _check_types(conn, root, table, keys, rows)  # raises: nothing stored
                cast = None if again == f"SELECT * FROM {rows}" else again
            if cast is None:
                os.replace(staged, final)
                fsync(folder, directory=True)
            else:  # in the types the other writer gave the table
                columns = _columns(conn, cast)
                retry(lambda: copy_atomic(conn, cast, final, None, row_group_size))
    finally:
        staged.unlink(missing_ok=True)
    _after_store(database, root, table, keys, final, conn, columns)


def write(
    database: str | os.PathLike[str], table: str, frame: pd.DataFrame, keys: Mapping[str, Any]
) -> int:
    """Replace the rows of one partition (``keys`` = column -> value; ``{}`` = the whole table)
    with ``frame``; returns the rows written."""
    check_frame(table, frame, keys)
    with memory() as conn:
        conn.register(FRAME, frame)
        _check_and_store(database, table, keys, conn, FRAME)
    return len(frame)


#: Row groups of a committed spool: the writer then buffers this many rows per thread, not
#: DuckDB's 122,880 (a 400,000-tile `siscore_grid` commit: 114 -> 79 MB above the process).
SPOOL_ROW_GROUP = 16_384


class PartitionSpool:
    """One partition's rows written batch by batch, so a 400,000-tile year's index never sits in
    memory whole: each batch goes to its own small Parquet file in a private spool folder, SQL can
    look at all of them (``query``, ``{spool}`` standing for the rows), and ``commit`` replaces the
    partition with them exactly as :func:`write` would.  Until ``commit`` nothing is published; a
    spool left by a killed run is removed by a later one."""

    def __init__(self, database: str | os.PathLike[str], table: str, keys: Mapping[str, Any]):
        self.database, self.table, self.keys = database, table, dict(keys)
        root = catalog.ensure_store(database)
        base = root / SPOOL_DIR
        base.mkdir(parents=True, exist_ok=True)
        _sweep_spools(base)
        self.folder = base / f"{table}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.folder.mkdir()
        self.files: list[Path] = []
        self.rows = 0

    def append(self, frame: pd.DataFrame) -> int:
        """Add a batch (every row must carry the partition's keys); returns its rows."""
        check_frame(self.table, frame, self.keys)
        if self.files and len(frame) == 0:
            return 0
        path = self.folder / f"batch_{len(self.files):06d}{SUFFIX}"
        with memory(single_thread=True) as conn:
            conn.register(FRAME, frame)
            conn.execute(f"COPY (SELECT * FROM {FRAME}) TO {literal(path)} (FORMAT parquet)")
            conn.unregister(FRAME)
        self.files.append(path)
        self.rows += len(frame)
        return len(frame)

    @property
    def source(self) -> str:
        if not self.files:
            raise ValueError(f"{self.table}: nothing appended to the spool")
        return f"{scan_sql(self.files)}"

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """``sql`` over the spooled rows, written with ``{spool}`` where the rows go."""
        with memory(single_thread=True) as conn:
            return conn.execute(sql.format(spool=self.source), params or []).df()

    def commit(self) -> int:
        """Replace the partition's rows with the spooled ones (type-checked first, as ``write``)."""
        with memory(single_thread=True) as conn:
            _check_and_store(
                self.database, self.table, self.keys, conn, self.source, SPOOL_ROW_GROUP
            )
        return self.rows

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def spool(
    database: str | os.PathLike[str], table: str, keys: Mapping[str, Any]
) -> Iterator[PartitionSpool]:
    """A :class:`PartitionSpool` whose files are removed on leaving, committed or not."""
    sp = PartitionSpool(database, table, keys)
    try:
        yield sp
    finally:
        sp.discard()


def _sweep_spools(base: Path, older_than_s: float = STALE_TMP_S) -> None:
    """Remove spool folders that killed writers left (only old ones: a live writer's is young)."""
    now = time.time()
    for entry in os.scandir(base):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime > older_than_s:
                shutil.rmtree(entry.path, ignore_errors=True)
        except FileNotFoundError:
            pass


def clear(database: str | os.PathLike[str], table: str, keys: Mapping[str, Any]) -> int:
    """Replace a partition's rows with nothing (its file becomes an empty one with the table's
    columns, so the table stays queryable); a table that does not exist yet has nothing to
    clear.  Returns the rows removed."""
    root = catalog.store_for_reading(database)
    if table not in list_tables(root):
        return 0
    with memory() as conn:
        catalog.create_views(conn, root, [table])
        n = retry(
            lambda: conn.execute(
                f"SELECT count(*) FROM {quote(table)} WHERE {_where(keys)}", list(keys.values())
            ).fetchone()[0]
        )
        _store_partition(database, table, keys, f"SELECT * FROM {quote(table)} WHERE FALSE", conn)
    return int(n)


def union_view(
    database: str | os.PathLike[str], view: str, tables: list[str], columns: list[str]
) -> None:
    """Define ``view`` as the union of those ``tables`` that exist, on ``columns``: one
    analyst-facing name over tables that each have exactly one writer."""
    root = catalog.ensure_store(database)
    spec = {"tables": list(tables), "columns": list(columns)}
    path = root / VIEWS_DIR / f"{table_dir(root, view).name}.json"
    if read_json(path, None) == spec and view in read_json(root / catalog.MANIFEST, {}).get(
        "views", []
    ):
        return
    with catalog.store_lock(root):
        write_json_atomic(path, spec)
        catalog.publish(Path(database), root)


@contextlib.contextmanager
def reader(
    database: str | os.PathLike[str], tables: list[str] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with a view per table (or per one of ``tables``) and the
    stored views: what the pipeline and the ``siscore`` commands read through."""
    root = catalog.store_for_reading(database)
    with memory() as conn:
        present = set(list_tables(root))
        catalog.create_views(
            conn, root, [t for t in tables if t in present] if tables is not None else None
        )
        yield conn


def read(
    database: str | os.PathLike[str],
    table: str,
    keys: Mapping[str, Any],
    order_by: str | None = None,
    columns: str = "*",
) -> pd.DataFrame:
    """Rows of one partition (read from the files that can hold it; ``columns``: a select list,
    so a 400,000-row partition is read only as wide as it is used); an empty frame if the table
    does not exist yet."""
    root = catalog.store_for_reading(database)
    if table not in list_tables(root):
        return pd.DataFrame()
    order = f" ORDER BY {order_by}" if order_by else ""

    def go() -> pd.DataFrame:
        files = [p for p, _ in _overlapping(table_dir(root, table), keys)]
        source = (
            scan_sql(files)
            if files
            else f"(SELECT * FROM {scan_sql([partition_files(table_dir(root, table))[0]])} LIMIT 0)"
        )
        with memory() as conn:
            return conn.execute(
                f"SELECT {columns} FROM {source} WHERE {_where(keys)}{order}", list(keys.values())
            ).df()

    return retry(go)


def query(
    database: str | os.PathLike[str], sql: str, params: list[Any] | None = None
) -> pd.DataFrame:
    """Run ``sql`` over the warehouse, with views for the tables it names, as it names them."""
    root = catalog.store_for_reading(database)
    known, views = set(list_tables(root)), view_specs(root)

    def go() -> pd.DataFrame:
        with memory() as conn:
            made: set[str] = set()
            while True:
                try:
                    return conn.execute(sql, params or []).df()
                except duckdb.CatalogException as exc:
                    m = MISSING_TABLE.search(str(exc))
                    name = m.group(1) if m else None
                    if name is None or name in made or (name not in known and name not in views):
                        raise
                    made.add(name)
                    catalog.create_views(conn, root, [name] if name in known else None)

    return retry(go)


def refresh(database: str | os.PathLike[str]) -> list[str]:
    """Rebuild the analysts' catalog now; returns the tables it shows."""
    return catalog.refresh(database)


def table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a table or view of that name exists on ``conn``."""
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    return bool(row and row[0])


def read_frame(
    conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> pd.DataFrame:
    return conn.execute(sql, params or []).df()


def row_counts(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every table and view on ``conn`` (a :func:`reader` or the analysts' catalog)."""
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY 1"
        ).fetchall()
    ]
    return {t: int(conn.execute(f"SELECT count(*) FROM {quote(t)}").fetchone()[0]) for t in tables}
