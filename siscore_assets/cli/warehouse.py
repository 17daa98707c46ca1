"""``siscore warehouse``: the analysts' catalog (refresh it, show where things are, spatial)."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="The warehouse: Parquet partitions, and the analysts' DuckDB catalog of views over them.",
)


def _database() -> str:
    from siscore_assets.core.countries import load_countries
    from siscore_assets.definitions import build_definitions

    return build_definitions(load_countries()).resources["warehouse"].database


@app.command()
def refresh() -> None:
    """Rebuild the analysts' catalog now (a new table shows up by itself after the write that
    creates it; use this after moving the data folder or to migrate an old-style warehouse)."""
    from siscore_assets.core.storage import spatial, warehouse
    from siscore_assets.core.storage.tables import store_root

    database = _database()
    tables = warehouse.refresh(database)
    typer.echo(f"{database}: {len(tables)} tables as views over {store_root(database)}")
    typer.echo("query it (spatial loaded, from any folder the data is copied to): siscore sql")
    init = spatial.init_file(database)
    if init.is_file():
        typer.echo(f"or with a DuckDB shell: duckdb {database} -readonly -init {init}")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="warehouse")
