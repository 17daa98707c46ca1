"""``siscore map``: build a country's interactive map from the warehouse and serve it on
127.0.0.1 at a free port (``--out DIR``: write the static site there instead, for any host)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer


def _check_years(cfg, stored: list[int], database: str) -> None:
    """Say which stored years the countries file no longer configures (left out, as `siscore
    export` does); exit 2 before anything is built or replaced when no year is left."""
    from siscore_assets.cli.export import unconfigured_years

    stale, note = unconfigured_years(cfg, stored)
    if stale:
        typer.echo(note, err=True)
    if not set(stored) & set(cfg.years):
        typer.echo(
            f"error: the warehouse {database} has nothing for {cfg.code}: "
            f"run `siscore run --country {cfg.code}` first",
            err=True,
        )
        raise typer.Exit(2)


def map_command(
    country: str = typer.Option(None, help="Country code (default: the countries file's default)."),
    out: Annotated[
        Path | None,
        typer.Option(  # noqa: UP045 - typer needs Optional on 3.10
            help="Write the static site to this folder and exit (default: build it under "
            "<data root>/<C>/web and serve it)."
        ),
    ] = None,
    port: int = typer.Option(0, help="Port to serve on (0: a free one)."),
    rebuild: bool = typer.Option(
        None,
        help="Rebuild from the warehouse (default: only when the warehouse changed since the "
        "site was built; --no-rebuild serves the site the web_map asset last built).",
        show_default=False,
    ),
) -> None:
    """Open the map: the country's imagery per year, siScore, change, districts, tiles."""
    from siscore_assets.core.countries import UnknownPartitionError, load_countries
    from siscore_assets.core.maps.web import serve, site
    from siscore_assets.core.maps.web.sources import UnsupportedGrid
    from siscore_assets.definitions import build_definitions

    reg = load_countries()
    try:
        cfg = reg.get(country or reg.default)
    except UnknownPartitionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    defs = build_definitions(reg)
    settings, warehouse = defs.resources["settings"], defs.resources["warehouse"]
    folder = Path(out) if out is not None else settings.country_dir(cfg.code) / "web"
    if rebuild is None:  # a large country's site takes minutes: rebuild only what changed
        rebuild = not site.is_current(warehouse.database, cfg.code, folder, cfg.years)
        if not rebuild:
            typer.echo(f"{folder}: up to date with the warehouse (--rebuild builds it again)")
    if rebuild or not (folder / "index.html").is_file():
        _check_years(cfg, site.site_years(warehouse.database, cfg.code), warehouse.database)
        from siscore_assets.defs.common.data import require_one_scorer

        # the map differences any two years: never two models' scores
        require_one_scorer(settings, warehouse, cfg.code, cfg.years)
        try:  # nothing is replaced before the new site is whole
            report = site.build_site(warehouse.database, cfg.code, folder, years=cfg.years)
        except (site.NotASite, UnsupportedGrid) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        s = report.summary()
        typer.echo(
            f"{folder}: {s['site_mb']} MB in {s['files']} files, {s['tiles']} tiles, years "
            f"{', '.join(map(str, report.years))} ({s['seconds']} s)"
        )
        for note in report.notes:
            typer.echo(f"note: {note}")
    if out is not None:
        typer.echo(f"static site written: serve {folder} with any web server")
        return
    # `kill` stops the server as Ctrl-C does, even when started with SIGTERM ignored or
    # blocked (both inherited from the parent: a test runner's worker left it so, and the
    # server outlived its terminate())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with serve.SiteServer(folder, port=port) as server:
        typer.echo(f"siScore map of {cfg.code}: {server.url}  (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("stopped")


def register(app: typer.Typer) -> None:
    app.command("map")(map_command)
