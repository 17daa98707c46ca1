"""``siscore export`` (QGIS grid polygons) and ``siscore change`` (change raster, any two years).

Both leave out years the warehouse still holds but the countries file no longer configures for
the country, and say so (:func:`unconfigured_years`, which ``siscore summary`` uses too).  The
export is streamed (``core/maps/export.py``): its memory does not grow with the country.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from siscore_assets.cli import errors


def unconfigured_years(cfg, stored: Iterable[int]) -> tuple[list[int], str]:
    """The years in the warehouse that the country ``cfg`` no longer configures (scored under
    another configuration: their scores and changes would not compare with the configured
    years'), sorted, and the one line that says they are left out ('' when there are none)."""
    stale = sorted({int(y) for y in stored} - set(cfg.years))
    note = (
        f"note: leaving out {', '.join(map(str, stale))}: in the warehouse, no longer "
        f"configured for {cfg.code}"
        if stale
        else ""
    )
    return stale, note


def _country(code: str | None, years: list[int] | None = None):
    """(country config, settings, warehouse resource); exit 2 with a clear message for an
    unknown country or a year it does not have."""
    from siscore_assets.core.countries import load_countries
    from siscore_assets.definitions import build_definitions

    reg = load_countries()
    cfg = errors.country(reg, code)
    for y in years or []:
        errors.year(cfg, y)
    defs = build_definitions(reg)
    return cfg, defs.resources["settings"], defs.resources["warehouse"]


def _no_siscore(cfg, database: str) -> NoReturn:
    typer.echo(
        f"error: the warehouse {database} has no siScore for {cfg.code}: "
        f"run `siscore run --country {cfg.code}` first",
        err=True,
    )
    raise typer.Exit(2)


def _configured_years(conn, cfg, database: str) -> list[int]:
    """The configured years `siscore_grid` holds for the country (on ``conn``), naming in one
    line the stored years no longer configured; exit 2 when none is left."""
    from siscore_assets.core.maps import export as export_lib

    stored = export_lib.stored_years(conn, cfg.code)
    stale, note = unconfigured_years(cfg, stored)
    if stale:  # scored under another configuration: its changes would not compare
        typer.echo(note, err=True)
    years = sorted(set(stored) & set(cfg.years))
    if not years:
        _no_siscore(cfg, database)
    return years


def _one_scorer(settings, warehouse, code: str, years: list[int]) -> None:
    """Changes between years are refused when two scorers made their scores (one line)."""
    from siscore_assets.defs.common.data import require_one_scorer

    require_one_scorer(settings, warehouse, code, years)


def _country_grid(code: str | None, years: list[int]):
    """(country config, settings, warehouse resource, siscore_grid rows of ``years``, read alone:
    not the country's every year); exit 2 with a clear message for an unknown country, a year it
    does not have, or nothing in the warehouse."""
    import pandas as pd

    from siscore_assets.core.storage import warehouse as wh

    cfg, settings, warehouse = _country(code, years)
    with wh.reader(warehouse.database, ["siscore_grid"]) as conn:
        _configured_years(conn, cfg, warehouse.database)
    _one_scorer(settings, warehouse, cfg.code, years)
    grid = pd.concat(
        [wh.read(warehouse.database, "siscore_grid", {"country": cfg.code, "year": y}, "y, x")
         for y in years],
        ignore_index=True,
    )  # fmt: skip
    return cfg, settings, warehouse, grid


def export(
    country: str = typer.Option(None, help="Country code (default: the countries file's default)."),
    format: str = typer.Option(
        "gpkg", "--format", help="'gpkg' (GeoPackage, for QGIS) or 'geoparquet'."
    ),
    out: Annotated[
        Path | None,
        typer.Option(  # noqa: UP045 - typer needs Optional on 3.10
            help="Output file (default: <data root>/<C>/exports/siscore_<C>.gpkg or .parquet)."
        ),
    ] = None,
) -> None:
    """Write grid polygons (EPSG:3857 tile bounds) with yearly scores and changes as columns."""
    from siscore_assets.core.maps import export as export_lib

    fmt = format.lower()
    if fmt not in export_lib.FORMATS:
        typer.echo(
            f"error: unsupported format {format!r}; supported: {', '.join(export_lib.FORMATS)}",
            err=True,
        )
        raise typer.Exit(2)
    if out is not None:
        errors.output_file(out, (export_lib.FORMATS[fmt],), f"--format {fmt}")
    cfg, settings, warehouse = _country(country)
    path = (
        out
        or settings.country_dir(cfg.code)
        / "exports"
        / f"siscore_{cfg.code}{export_lib.FORMATS[fmt]}"
    )
    from siscore_assets.core.storage import warehouse as wh

    with wh.reader(warehouse.database, ["siscore_grid"]) as conn:
        years = _configured_years(conn, cfg, warehouse.database)
        _one_scorer(settings, warehouse, cfg.code, years)
        tiles, columns = export_lib.write_export(conn, cfg.code, years, path, fmt)
    cols = [c for c in columns if c.startswith(("score_", "change_"))]
    typer.echo(
        f"wrote {path}: layer '{export_lib.LAYER}', {tiles} tiles, EPSG:3857, "
        f"columns {', '.join(cols)}"
    )


def change(
    country: str = typer.Option(None, help="Country code (default: the countries file's default)."),
    year_from: int = typer.Option(..., "--from", help="Earlier year."),
    year_to: int = typer.Option(..., "--to", help="Later year."),
    out_dir: Annotated[
        Path | None,
        typer.Option(  # noqa: UP045 - typer needs Optional on 3.10
            "--out-dir", help="Folder (default: <data root>/<C>/rasters)."
        ),
    ] = None,
) -> None:
    """Change COG + quicklook of siScore between any two years (to minus from)."""
    import pandas as pd

    from siscore_assets.core.maps import rasters

    if out_dir is not None:
        errors.output_folder(out_dir)
    cfg, settings, warehouse, grid = _country_grid(country, [year_from, year_to])
    a, b = grid[grid["year"] == year_from], grid[grid["year"] == year_to]
    missing = [y for y, f in ((year_from, a), (year_to, b)) if f.empty]
    if missing:
        typer.echo(
            f"error: no siScore for {cfg.code} in {', '.join(map(str, missing))}: "
            f"run `siscore run --country {cfg.code} --years {','.join(map(str, missing))}` first",
            err=True,
        )
        raise typer.Exit(2)
    try:
        tif, png, ch = rasters.write_change_pair(
            a,
            b,
            year_from,
            year_to,
            out_dir or settings.country_dir(cfg.code) / "rasters",
            label=cfg.code,
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    kind = f"change_{year_from}_{year_to}"
    files = pd.DataFrame(
        [
            {"country": cfg.code, "year": year_to, "kind": kind, "format": f, "path": str(p)}
            for f, p in (("geotiff", tif), ("png", png))
        ]
    )
    warehouse.write(
        "adhoc_change_files", files, {"country": cfg.code, "year": year_to, "kind": kind}
    )
    warehouse.union_view("raster_files", rasters.RASTER_FILE_TABLES, rasters.RASTER_FILE_COLUMNS)
    d = ch.loc[ch["inhabited_any"], "delta"]
    typer.echo(
        f"wrote {tif} and {png}: {len(ch)} tiles in both years, {len(d)} inhabited; "
        f"mean change {d.mean():+.4f}, up >0.05: {(d > 0.05).sum()}, "
        f"down <-0.05: {(d < -0.05).sum()}"
    )
    from siscore_assets.defs.common.data import read_census_link

    link = read_census_link(warehouse, cfg.code)
    if link is not None:  # the same change on the census's scale
        inh = ch[ch["inhabited_any"]]
        # people only where that year's verdict is inhabited
        was, now = inh["inhabited_prev"].to_numpy(bool), inh["inhabited_cur"].to_numpy(bool)
        people = link.people(inh["score_cur"].to_numpy(dtype=float), now) - link.people(
            inh["score_prev"].to_numpy(dtype=float), was
        )
        # gains and losses as the score's flag says; a tile whose verdict changed between the
        # years can move the other way in people (zero_filter: false keeps its score)
        sig, delta = inh["significant"].to_numpy(bool), inh["delta"].to_numpy(dtype=float)
        flipped = int((was != now).sum())
        typer.echo(
            f"in people (census_link on {link.year}'s scores): net {people.sum():+,.0f}; "
            f"significant gains {people[sig & (delta > 0)].sum():+,.0f}, "
            f"significant losses {people[sig & (delta < 0)].sum():+,.0f}"
            + (f"; {flipped} tiles changed habitation verdict" if flipped else "")
        )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("change")(change)
