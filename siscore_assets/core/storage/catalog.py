"""The analysts' catalog: ``data/warehouse.duckdb`` holds one VIEW per table over that table's
Parquet files, so ``duckdb data/warehouse.duckdb -readonly`` shows the same table names and
columns as ever, and nothing is stored in it but view definitions.

Views read their table's file glob at query time, so a new partition (or a new column) needs no
refresh; only a new table or view does.  A refresh never opens the analysts' file: it builds a
new catalog under a temporary name and renames it over the old one.  An analyst holding the old
file open keeps reading it (the views see every new partition; new tables appear on reconnect),
and takes no lock a writer could wait for.  Refreshes are serialised by a lock file among
pipeline processes only.  A warehouse from before this layout (real tables in the ``.duckdb``
file) is migrated once, on first use: every table is copied out to partition files, split by
every column the platform's writers partition tables by (:data:`PARTITION_COLUMNS`) that it has,
and the old file is kept as ``<name>.legacy``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from . import spatial
from .paths import is_safe_name
from .tables import (
    VIEWS_DIR,
    copy_atomic,
    key_text,
    list_tables,
    literal,
    memory,
    partition_files,
    partition_name,
    quote,
    read_json,
    retry,
    scan_sql,
    store_root,
    sweep_tmp,
    table_dir,
    table_glob,
    tmp_sibling,
    view_specs,
    view_sql,
    write_json_atomic,
)

LOG = logging.getLogger(__name__)

STORE_MARK = "_store.json"
MANIFEST = "_catalog.json"
LOCK_FILE = ".lock"
FORMAT = 1
#: The columns the platform's writers partition tables by: (country, year), (country,
#: annotator), (country, year, kind), (country, first_year, last_year) or country alone.
PARTITION_COLUMNS = ("country", "year", "annotator", "kind", "first_year", "last_year")


@contextlib.contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Exclusive among pipeline processes (refresh, migration); analysts never take it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def ensure_store(database: str | os.PathLike[str]) -> Path:
    """The store's folder, created (and an old-style warehouse migrated) on first use."""
    root = store_root(database)
    if (root / STORE_MARK).is_file():
        return root
    with store_lock(root):
        if not (root / STORE_MARK).is_file():
            migrated = migrate_legacy(Path(database), root)
            write_json_atomic(root / STORE_MARK, {"format": FORMAT, "migrated_tables": migrated})
            publish(Path(database), root)
    return root


def store_for_reading(database: str | os.PathLike[str]) -> Path:
    """The store's folder for a read: nothing is created when there is nothing yet (an
    old-style warehouse is still migrated, so its rows can be read)."""
    root = store_root(database)
    if (root / STORE_MARK).is_file() or not Path(database).is_file():
        return root
    return ensure_store(database)


def legacy_objects(database: Path) -> tuple[list[str], dict[str, str]]:
    """Base tables and views (name -> CREATE sql) of an old-style warehouse file; none if the
    file is absent or is already a catalog of views over Parquet."""
    if not database.is_file():
        return [], {}

    def look() -> tuple[list[str], dict[str, str]]:
        with duckdb.connect(str(database), read_only=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1"
                ).fetchall()
            ]
            views = dict(
                conn.execute(
                    "SELECT view_name, sql FROM duckdb_views() "
                    "WHERE NOT internal AND schema_name = 'main'"
                ).fetchall()
            )
        return tables, views

    tables, views = retry(look)
    return (tables, views) if tables else ([], {})


def migrate_legacy(database: Path, root: Path) -> list[str]:
    """Copy every table of an old-style warehouse into partition files; keep its views; move the
    old file aside to ``<name>.legacy``.  Returns the tables migrated."""
    tables, views = legacy_objects(database)
    if not tables:
        return []
    LOG.warning(
        "%s is an old-style warehouse (tables inside the file): copying %d tables to %s; "
        "the old file is kept as %s.legacy",
        database,
        len(tables),
        root,
        database.name,
    )
    with duckdb.connect(":memory:") as conn:
        conn.execute(f"ATTACH {literal(database)} AS legacy (READ_ONLY)")
        for table in tables:
            folder = table_dir(root, table)
            folder.mkdir(parents=True, exist_ok=True)
            written = set()
            for keys in legacy_partitions(conn, f"legacy.{quote(table)}"):
                where = " AND ".join(f"{quote(c)} IS NOT DISTINCT FROM ?" for c in keys) or "TRUE"
                final = folder / partition_name(keys)
                copy_atomic(
                    conn,
                    f"SELECT * FROM legacy.{quote(table)} WHERE {where}",
                    final,
                    list(keys.values()),
                )
                written.add(final)
            # What a killed earlier attempt left (no writer runs before the store is marked):
            # files it split otherwise, its temporary files.
            for path in partition_files(folder):
                if path not in written:
                    path.unlink()
            sweep_tmp(folder, older_than_s=-1.0)
        conn.execute("DETACH legacy")
    for name, sql in views.items():
        write_json_atomic(root / VIEWS_DIR / f"{name}.json", {"create_sql": sql})
    os.replace(database, database.with_name(database.name + ".legacy"))
    database.with_name(database.name + ".wal").unlink(missing_ok=True)
    return tables


def legacy_partitions(conn: duckdb.DuckDBPyConnection, source: str) -> list[dict[str, Any]]:
    """The partitions an old-style table (``source``) is copied to: one per value of every
    :data:`PARTITION_COLUMNS` column it has.  A table is thus never split coarser than its
    writers partition it: a later write of a partition replaces its own file (or the finer files
    it covers) whole, and never has to rewrite a file that holds other partitions' rows too --
    which two sibling writes at once did, each from the copy it read, doubling rows.  A column
    whose values cannot name a file is not split by; an empty table keeps its columns as one
    empty file."""
    columns = {r[0] for r in conn.execute(f"DESCRIBE {source}").fetchall()}
    by = [
        col
        for col in PARTITION_COLUMNS
        if col in columns
        and all(
            is_safe_name(key_text(v))
            for (v,) in conn.execute(f"SELECT DISTINCT {quote(col)} FROM {source}").fetchall()
        )
    ]
    if not by:
        return [{}]
    groups = conn.execute(
        f"SELECT DISTINCT {', '.join(quote(c) for c in by)} FROM {source} ORDER BY ALL"
    ).fetchall()
    return [dict(zip(by, values)) for values in groups] or [{}]


def table_schema(conn: duckdb.DuckDBPyConnection, root: Path, table: str) -> list[list[str]]:
    """[column, type] of a table as the union of its partition files (columns matched by name)."""
    return [
        [r[0], r[1]]
        for r in conn.execute(
            f"DESCRIBE SELECT * FROM {scan_sql(table_glob(root, table))}"
        ).fetchall()
    ]


def _typed_select(schema: list[list[str]]) -> str:
    """Columns listed and cast to the types they had at publication: a session that holds the
    catalog open keeps working when a later partition adds a column or widens a type (DuckDB
    1.4 refuses a view whose result types changed); it sees the change on reconnect."""
    cols = [
        quote(c) if t.strip('"') == "NULL" else f"CAST({quote(c)} AS {t}) AS {quote(c)}"
        for c, t in schema
    ]
    return ", ".join(cols) or "*"


def create_views(
    conn: duckdb.DuckDBPyConnection,
    root: Path,
    tables: list[str] | None = None,
    schemas: dict[str, list[list[str]]] | None = None,
) -> list[str]:
    """A view per table over its Parquet glob (every table, then the stored views over them; or
    just ``tables``).  With ``schemas`` (the analysts' catalog) the views are stored and list
    and cast their columns; without, they are session views of ``conn``.  Returns the tables."""
    if tables is not None:
        present = tables
    elif (
        schemas is not None
    ):  # the snapshot the schemas were read from: another writer may add a table meanwhile
        present = sorted(schemas)
    else:
        present = list_tables(root)
    kind = "VIEW" if schemas is not None else "TEMP VIEW"
    for table in present:
        cols = _typed_select(schemas[table]) if schemas is not None else "*"
        conn.execute(
            f"CREATE OR REPLACE {kind} {quote(table)} AS "
            f"SELECT {cols} FROM {scan_sql(table_glob(root, table))}"
        )
    for name, spec in view_specs(root).items() if tables is None else []:
        sql = view_sql(name, spec, set(present))
        if sql is not None:
            try:
                conn.execute(sql.replace("CREATE VIEW", f"CREATE OR REPLACE {kind}", 1))
            except duckdb.Error as exc:  # a migrated view over a table that is gone
                LOG.warning("view %s not created: %s", name, exc)
    return present


def published(root: Path) -> dict[str, list[list[str]]]:
    """Table -> [column, type] as the analysts' catalog shows them now."""
    return read_json(root / MANIFEST, {}).get("tables", {})


def needs_publish(root: Path, table: str, columns: list[list[str]] | None = None) -> bool:
    """Whether the catalog's view of ``table`` is missing or differs from the table on disk.  A
    write whose columns and types are already published (``columns``) needs nothing: the view
    reads the glob, so a new partition appears by itself."""
    shown = published(root).get(table)
    if shown is None:
        return True
    if columns is not None and sorted(map(tuple, columns)) == sorted(map(tuple, shown)):
        return False
    with memory() as conn:
        return table_schema(conn, root, table) != shown


def publish(database: Path, root: Path) -> list[str]:
    """Rebuild the analysts' catalog from the tables on disk and rename it into place.  The
    caller holds :func:`store_lock`."""
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(database)
    try:
        with memory() as probe:
            schemas = {
                t: retry(lambda t=t: table_schema(probe, root, t)) for t in list_tables(root)
            }
        with duckdb.connect(str(tmp)) as conn:
            present = create_views(conn, root, schemas=schemas)
            conn.execute("CHECKPOINT")
        os.replace(tmp, database)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    write_json_atomic(
        root / MANIFEST,
        {"tables": {t: schemas[t] for t in present}, "views": sorted(view_specs(root))},
    )
    spatial.write_init_file(database, root)
    return present


def refresh(database: str | os.PathLike[str]) -> list[str]:
    """Rebuild the catalog now (``siscore warehouse refresh``); returns the tables it shows."""
    root = ensure_store(database)
    with store_lock(root):
        return publish(Path(database), root)


def publish_if_changed(
    database: str | os.PathLike[str], root: Path, table: str, columns: list[list[str]] | None = None
) -> None:
    """After a write: rebuild the catalog if its view of ``table`` is missing or out of date.  A
    failure is logged, never raised -- the partition is stored; the next write or
    ``siscore warehouse refresh`` tries again."""
    try:
        if not needs_publish(root, table, columns):
            return
        with store_lock(root):
            if needs_publish(root, table, columns):
                publish(Path(database), root)
    except (OSError, duckdb.Error) as exc:  # pragma: no cover - disk full, permissions
        LOG.warning(
            "analyst catalog %s not refreshed (run `siscore warehouse refresh`): %s", database, exc
        )


def copy_store(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a warehouse (its table files) to another catalog path and build that catalog."""
    import shutil

    src_root, dst_root = ensure_store(src), store_root(dst)
    shutil.copytree(src_root, dst_root, ignore=shutil.ignore_patterns(LOCK_FILE, "*.tmp"))
    refresh(dst)


@contextlib.contextmanager
def session(database: str | os.PathLike[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An analyst's DuckDB session on the warehouse as it is on disk now: an in-memory database
    (nothing the session does is stored), a view per table over its Parquet files where the
    catalog file is now (not where it was built), the stored views, spatial loaded with
    ``tile_polygons`` and ``district_geometries``.  Without the extension package the tables
    are there and the spatial views are not."""
    root = store_for_reading(database)
    with duckdb.connect(":memory:") as conn:
        tables = set(create_views(conn, root))
        try:
            spatial.load(conn)
        except (spatial.SpatialUnavailableError, duckdb.Error):
            pass
        else:
            spatial.add_views(conn, tables & set(list_tables(root)))
        yield conn
