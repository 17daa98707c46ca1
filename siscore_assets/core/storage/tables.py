"""The warehouse on disk: one Parquet file per partition of each table, each written whole to a
temporary name and renamed into place.

``data/warehouse.duckdb`` is the analysts' catalog; the tables live beside it in
``data/warehouse/<table>/<key>=<value>,....parquet`` (``all.parquet`` for a table written whole).
A rename within one folder is atomic on POSIX file systems, so a reader -- or the next run after a
writer was killed -- sees either a partition's previous file or its new one, never half of it.
Nothing here takes a lock: writers of different partitions write different files.  Where two
writers could act on one file or one decision (a file holding rows of several partitions, a
table's first column types), ``warehouse`` takes the store's lock (``catalog.store_lock``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np

from .paths import UnsafePathError, safe_join, safe_name

SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"
WHOLE = "all"
#: A table name is also a SQL identifier (a view in the analysts' catalog).
TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
#: Leftover temporary files of a killed writer older than this are removed by the next write.
STALE_TMP_S = 3600.0
VIEWS_DIR = "_views"

T = TypeVar("T")

TRANSIENT_ERRNO = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.EINTR,
    errno.EIO,
    errno.ENOENT,
    errno.ESTALE,
    errno.ETXTBSY,
}
TRANSIENT_MARKERS = (
    "Could not set lock",
    "Conflicting lock",
    "database is locked",
    "No files found",
    "Cannot open file",
    "No such file",
)


def is_transient(exc: BaseException) -> bool:
    """A failure worth retrying: a lock held for a moment, a file renamed under a reader, I/O."""
    if isinstance(exc, OSError) and not isinstance(exc, duckdb.Error):
        return exc.errno in TRANSIENT_ERRNO
    return isinstance(exc, duckdb.IOException) or (
        isinstance(exc, duckdb.Error) and any(m in str(exc) for m in TRANSIENT_MARKERS)
    )


def retry(fn: Callable[[], T], *, attempts: int = 7, first_wait_s: float = 0.05) -> T:
    """``fn()``, retried with exponential backoff (0.05 s, 0.1 s, ... 1.6 s) on transient errors."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            time.sleep(first_wait_s * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


#: This process's in-memory databases, by single-threaded (a forked child starts empty).
_MEMORY: dict[bool, duckdb.DuckDBPyConnection] = {}
_MEMORY_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child starts with its own databases and a free lock: a lock another thread of
    the parent held at the fork would otherwise stay held in the child for ever.  The parent's
    databases are leaked in the child, never freed: their threads stayed in the parent, and
    freeing the copy aborts or hangs the child (at exit, or when dropped beside its own)."""
    global _MEMORY_LOCK
    for con in _MEMORY.values():
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(con))
    _MEMORY.clear()
    _MEMORY_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def memory(single_thread: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to this process's in-memory DuckDB (opening a database costs ~0.1 s, a
    cursor next to nothing); views and registered frames on it are private to the caller.

    ``single_thread``: a second database with one thread, for scans and copies of a whole
    country-year's rows (the warehouse spools). With a thread per core DuckDB buffers rows to
    keep their order, and that grew with the rows: a 400,000-row spool's checks and commit
    took ~75 MB more than a 10,000-row one, ~35 MB on one thread, for ~0.1 s more."""
    with _MEMORY_LOCK:
        if single_thread not in _MEMORY:
            _MEMORY[single_thread] = duckdb.connect(
                ":memory:", config={"threads": 1} if single_thread else {}
            )
        cur = _MEMORY[single_thread].cursor()
    try:
        yield cur
    finally:
        cur.close()


def store_root(database: str | os.PathLike[str]) -> Path:
    """The folder of table files that belongs to the catalog file ``database``."""
    path = Path(database)
    return path.with_suffix("") if path.suffix else path.with_name(f"{path.name}.tables")


def check_table(table: str) -> str:
    if not TABLE_NAME.fullmatch(table):
        raise UnsafePathError(
            f"table name {table!r}: use letters, digits and '_', starting with a letter"
        )
    return table


def quote(name: str) -> str:
    """A checked SQL identifier."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return f'"{name}"'


def literal(path: str | os.PathLike[str]) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def key_text(value: Any) -> str:
    """A partition key value as it appears in a file name (2016, not 2016.0)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        return str(int(value))
    return str(value)


def partition_name(keys: Mapping[str, Any]) -> str:
    """File name of a partition: ``country=SYN,year=2016.parquet`` (columns sorted)."""
    if not keys:
        return WHOLE + SUFFIX
    parts = [
        f"{safe_name(col, 'partition column')}={safe_name(key_text(v), f'partition key {col}')}"
        for col, v in sorted(keys.items())
    ]
    return ",".join(parts) + SUFFIX


def parse_partition(name: str) -> dict[str, str]:
    """The keys a partition file name holds (empty for a table written whole)."""
    stem = name[: -len(SUFFIX)]
    if stem == WHOLE:
        return {}
    return dict(part.split("=", 1) for part in stem.split(","))


def table_dir(root: Path, table: str) -> Path:
    return safe_join(root, check_table(table), what="table")


def partition_files(folder: Path) -> list[Path]:
    """The complete partition files of a table folder (temporary files are not among them)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [folder / n for n in sorted(names) if n.endswith(SUFFIX) and not n.startswith(".")]


def list_tables(root: Path) -> list[str]:
    """Tables with at least one partition file."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [
        e.name
        for e in entries
        if e.is_dir() and TABLE_NAME.fullmatch(e.name) and partition_files(Path(e.path))
    ]


def scan_sql(files: list[Path] | str) -> str:
    """``read_parquet`` over files (or a glob), columns matched by name across partitions."""
    source = (
        literal(files)
        if isinstance(files, str)
        else "[" + ", ".join(literal(f) for f in files) + "]"
    )
    return f"read_parquet({source}, union_by_name = true, hive_partitioning = false)"


def table_glob(root: Path, table: str) -> str:
    return str(table_dir(root, table).resolve() / f"*{SUFFIX}")


def fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def copy_atomic(
    conn: duckdb.DuckDBPyConnection,
    select_sql: str,
    final: Path,
    params: list[Any] | None = None,
    row_group_size: int | None = None,
) -> None:
    """Write ``select_sql``'s rows to ``final`` as Parquet: to a temporary sibling first, synced,
    then renamed over ``final`` -- a writer killed at any point leaves ``final`` as it was.
    ``row_group_size``: rows the writer buffers per group (DuckDB's default 122,880)."""
    tmp = tmp_sibling(final)
    groups = f", ROW_GROUP_SIZE {int(row_group_size)}" if row_group_size else ""
    try:
        conn.execute(
            f"COPY ({select_sql}) TO {literal(tmp)} (FORMAT parquet, COMPRESSION zstd{groups})",
            params or [],
        )
        fsync(tmp)
        os.replace(tmp, final)
        fsync(final.parent, directory=True)
    finally:
        tmp.unlink(missing_ok=True)


def sweep_tmp(folder: Path, older_than_s: float = STALE_TMP_S) -> int:
    """Remove temporary files that killed writers left behind (only old ones: a live writer's
    file is young).  Returns how many were removed."""
    removed, now = 0, time.time()
    for name in os.listdir(folder) if folder.is_dir() else []:
        path = folder / name
        if name.startswith(".") and name.endswith(TMP_SUFFIX):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
    return removed


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(path)
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def view_specs(root: Path) -> dict[str, dict[str, Any]]:
    """Views defined over tables (``union_view``, or kept from a migrated warehouse), by name."""
    folder = root / VIEWS_DIR
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        spec = read_json(path, None)
        if spec is not None:
            out[path.stem] = spec
    return out


def view_sql(name: str, spec: Mapping[str, Any], present: set[str]) -> str | None:
    """``CREATE VIEW`` of a stored view over the tables that exist now (None if none of them)."""
    if "create_sql" in spec:  # kept from a migrated warehouse, as DuckDB printed it
        return str(spec["create_sql"])
    members = [t for t in spec["tables"] if t in present]
    if not members:
        return None
    cols = ", ".join(quote(c) for c in spec["columns"])
    body = " UNION ALL ".join(f"SELECT {cols} FROM {quote(t)}" for t in members)
    return f"CREATE VIEW {quote(name)} AS {body}"
