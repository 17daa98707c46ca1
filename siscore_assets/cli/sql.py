"""``siscore sql [QUERY]``: the analysts' path, from the installed package, nothing else to install.

The warehouse is opened where it is now (a copied or moved data folder works as it is), in an
in-memory session (nothing is written anywhere), with DuckDB spatial loaded from its PyPI package
and the ``tile_polygons`` / ``district_geometries`` views.  Each statement that returns rows
prints a table (every row; or CSV with ``--csv``); without a query, statements are read until
``;`` from the terminal (or stdin).  Besides the statement check, the session's settings are
locked (a query log or profile is a file written).  Reading your own files (``read_csv``) works.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from siscore_assets.cli import errors

PROMPT, MORE = "siscore sql> ", "        ...> "


def _database(warehouse: Path | None) -> Path:
    if warehouse is not None:
        path = Path(warehouse).expanduser()
    else:
        root = os.environ.get("SISCORE_DATA_ROOT") or "data"
        path = Path(os.environ.get("SISCORE_WAREHOUSE") or f"{root}/warehouse.duckdb")
    from siscore_assets.core.storage.tables import store_root

    if not store_root(path).is_dir() and not path.is_file():
        errors.fail(
            f"no warehouse at {path} (run `siscore run` first, or give --warehouse "
            "<data folder>/warehouse.duckdb)"
        )
    return path


#: What an analyst's statement may be: reads, and what only changes this in-memory session.
READ_ONLY = (
    "SELECT", "EXPLAIN", "SET", "VARIABLE_SET", "CREATE", "DROP", "CALL", "PREPARE", "EXECUTE",
    "TRANSACTION", "RELATION",
)  # fmt: skip
#: The statement a ``PREPARE name [(types)] AS statement`` stores, to be checked like any other.
PREPARED = re.compile(
    r'\s*PREPARE\s+(?:"(?:[^"]|"")*"|\w+)\s*(?:\([^)]*\))?\s*AS\s+(.*)', re.I | re.S
)
#: Rows printed as DuckDB's box; a longer result is printed whole as a plain table.
BOX_ROWS = 40


def check_read_only(query: str) -> None:
    """Refuse a statement that could write outside the session (COPY into the warehouse's own
    files, EXPORT, ATTACH of the catalog, INSTALL / LOAD, a persistent secret), also when it is
    stored by PREPARE to be run by EXECUTE: the session is in memory, but its views read the
    real Parquet files and DuckDB may write anywhere."""
    import duckdb

    for statement in duckdb.extract_statements(query):
        kind = statement.type.name
        persistent = kind == "CREATE" and re.search(r"\bPERSISTENT\b", statement.query, re.I)
        if kind not in READ_ONLY or persistent:
            word = "CREATE PERSISTENT" if persistent else kind.replace("_", " ")
            raise ValueError(
                f"siscore sql is read-only: {word} statements are not run (tables to files: "
                "`siscore export`, or COPY from your own DuckDB session)"
            )
        if kind == "PREPARE":
            body = PREPARED.fullmatch(statement.query)
            if body is None:
                raise ValueError(
                    f"siscore sql: cannot read the statement PREPARE stores in "
                    f"{statement.query.strip()!r}"
                )
            check_read_only(body.group(1))


def lock_down(conn) -> None:
    """Past the statement check, settings cannot be changed: a query log or a profile set to a
    path is a file written.  Files are not fenced off: an analyst joins their own CSV here, and
    the statement check refuses what writes one (COPY, EXPORT)."""
    conn.execute("SET lock_configuration = true")


def _show(conn, query: str, csv: bool, out) -> None:
    """Run each statement of ``query`` in turn, printing every one that returns rows."""
    import duckdb

    check_read_only(query)
    shown = 0
    for statement in duckdb.extract_statements(query):
        rel = conn.sql(statement)
        if rel is None:  # a statement without rows (SET, CREATE TEMP VIEW ...)
            continue
        if shown and not csv:
            out.write("\n")
        shown += 1
        if csv:
            rel.df().to_csv(out, index=False)
        else:
            out.write(_box(rel) if rel.shape[0] <= BOX_ROWS else _long(rel))
        out.flush()


def _box(rel) -> str:
    """DuckDB's box with every row (its own default elides rows beyond 20)."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        rel.show(max_rows=BOX_ROWS)
    return text.getvalue().rstrip("\n") + "\n"


def _long(rel) -> str:
    """Every row, as a plain aligned table (too long for a box)."""
    return rel.df().to_string(index=False) + f"\n({rel.shape[0]} rows)\n"


def _problem(exc: Exception) -> str:
    """The error as one line."""
    return errors.one_line(str(exc))


def sql(
    query: Annotated[
        str | None,  # noqa: UP045
        typer.Argument(
            help="SQL statements (each result is printed); none: read statements ending in ';'."
        ),
    ] = None,
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    warehouse: Annotated[
        Path | None,  # noqa: UP045
        typer.Option(
            help="The catalog file (default: $SISCORE_WAREHOUSE, else "
            "$SISCORE_DATA_ROOT/warehouse.duckdb); its folder of tables is found beside it."
        ),
    ] = None,
) -> None:
    """Query the warehouse read-only, with spatial loaded (tile_polygons, district_geometries)."""
    import duckdb

    from siscore_assets.core.storage import catalog

    database = _database(warehouse)
    with catalog.session(database) as conn:
        lock_down(conn)
        if query is not None:
            try:
                _show(conn, query, csv, sys.stdout)
            except (duckdb.Error, ValueError) as exc:
                errors.fail(_problem(exc))
            return
        interactive = sys.stdin.isatty()
        if interactive:
            typer.echo(f"{database}: tables as views; end each statement with ';'; Ctrl-D quits")
        buffer: list[str] = []
        while True:
            if interactive:
                sys.stdout.write(MORE if buffer else PROMPT)
                sys.stdout.flush()
            line = sys.stdin.readline()
            if not line:
                break
            buffer.append(line)
            text = "".join(buffer).strip()
            if not text.endswith(";"):
                continue
            buffer.clear()
            try:
                _show(conn, text, csv, sys.stdout)
            except (duckdb.Error, ValueError) as exc:
                if not interactive:
                    errors.fail(_problem(exc))
                typer.echo(f"error: {_problem(exc)}", err=True)
        if "".join(buffer).strip():
            try:
                _show(conn, "".join(buffer), csv, sys.stdout)
            except (duckdb.Error, ValueError) as exc:
                errors.fail(_problem(exc))


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
