"""`siscore scores import` and `siscore proxies import`: bring another model's scores or another
ground layer into the platform.

The whole file is checked first (tile ids, numbers, years, duplicates; rasters: readable, with a
CRS); any problem is printed as file:line: column: problem, the command exits 2 and nothing is
written.  An accepted file is stored under the data root and the country's `imported_scores` /
`imported_proxies` asset is materialised, so the next validation run puts it side by side.
"""

from __future__ import annotations

import typer

from siscore_assets.cli.instance import dagster_instance

scores_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="External tile scores to validate beside siScore.",
)
proxies_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="External tile-level proxies to validate against.",
)

_ASSET = {"scores": "imported_scores", "proxies": "imported_proxies"}
#: One asset loads every stored import (its tables materialise together).
_IMPORT_ASSETS = ("imported_scores", "imported_proxies", "import_files")


def register(app: typer.Typer) -> None:
    app.add_typer(scores_app, name="scores")
    app.add_typer(proxies_app, name="proxies")


def _import(
    kind: str,
    file: str,
    country: str,
    name: str,
    year: int | None,
    replace: bool,
    materialize_now: bool,
    district: str = "density",
) -> None:
    from pathlib import Path

    from siscore_assets.core.analysis import imported as imports_lib
    from siscore_assets.core.countries import UnknownPartitionError, load_countries

    path = Path(file)
    try:
        reg = load_countries()
        cfg = reg.get(country)
        imports_lib.check_name(name, kind)
        if year is not None:
            cfg.check_year(year)
        if district not in ("density", "mean"):
            raise ValueError(f"--district must be 'density' or 'mean', got {district!r}")
        fmt, frame = imports_lib.validate_file(path, kind, zoom=cfg.zoom, years=cfg.years)
        if fmt == "csv" and year is not None:
            raise ValueError("--year is for rasters; a CSV carries its years in a 'year' column")
        # slow import: only once the file is good
        from siscore_assets.definitions import build_definitions

        defs = build_definitions(reg)
        folder = imports_lib.imports_dir(defs.resources["settings"].root, cfg.code, kind)
        other = "proxies" if kind == "scores" else "scores"
        if (
            imports_lib.imports_dir(defs.resources["settings"].root, cfg.code, other)
            / f"{name}.json"
        ).exists():
            raise ValueError(
                f"{name!r} is already the name of a {other} import for {cfg.code}; choose another"
            )
        if (folder / f"{name}.json").exists() and not replace:
            raise ValueError(
                f"an import named {name!r} exists for {cfg.code} ({folder}); "
                "pass --replace to overwrite it"
            )
    except (imports_lib.ImportFileError, UnknownPartitionError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    suffix = ".csv" if fmt == "csv" else ".tif"
    spec = imports_lib.ImportSpec(
        name=name,
        kind=kind,
        format=fmt,
        file=f"{name}{suffix}",
        original=str(path.resolve()),
        year=year,
        district=district,
    )
    for old in folder.glob(f"{name}.*"):  # a replaced import may change format
        if old.suffix != ".json" and old.name != spec.file:
            old.unlink()
    stored = imports_lib.store(path, spec, folder)
    rows = f"{len(frame)} rows" if frame is not None else "raster (sampled at tile centres)"
    typer.echo(f"stored {kind} import {name!r} for {cfg.code}: {stored} ({rows})")
    if materialize_now:
        from dagster import AssetKey, materialize

        from siscore_assets.defs.orchestration.runner import QUIET_CONSOLE

        result = materialize(
            list(defs.assets),
            selection=[AssetKey(k) for k in _IMPORT_ASSETS],
            partition_key=cfg.code,
            resources=dict(defs.resources),
            instance=dagster_instance(),
            raise_on_error=False,
            run_config=QUIET_CONSOLE,  # Dagster's DEBUG events stay in the instance, not here
        )
        if not result.success:
            typer.echo(
                f"error: materialising {_ASSET[kind]} for {cfg.code} failed; the file is stored, "
                "re-run the asset after fixing the cause",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(
            f"materialised {_ASSET[kind]} for {cfg.code}; "
            "re-run validation_grid / validation_district to see it side by side"
        )


_SCORES_FILE = typer.Argument(
    ..., help="CSV (tile_id as z/x/y or y_x; a score column; optional year) or GeoTIFF."
)
_PROXIES_FILE = typer.Argument(
    ..., help="CSV (tile_id as z/x/y or y_x; a value column; optional year) or GeoTIFF."
)
_COUNTRY = typer.Option(..., "--country", help="Country code from the countries file.")
_NAME = typer.Option(..., "--name", help="Name of the import (lower-case letters, digits, '_').")
_YEAR = typer.Option(
    None, "--year", help="Rasters only: the year it describes (default: every year)."
)
_REPLACE = typer.Option(False, "--replace", help="Overwrite an existing import of that name.")
_MATERIALIZE = typer.Option(True, "--materialize/--no-materialize", help="Load it into DuckDB now.")


@scores_app.command("import")
def import_scores(
    file: str = _SCORES_FILE,
    country: str = _COUNTRY,
    name: str = _NAME,
    year: int = _YEAR,
    replace: bool = _REPLACE,
    materialize_now: bool = _MATERIALIZE,
) -> None:
    """Import another model's tile scores (CSV column `score`, or a GeoTIFF)."""
    _import("scores", file, country, name, year, replace, materialize_now)


@proxies_app.command("import")
def import_proxies(
    file: str = _PROXIES_FILE,
    country: str = _COUNTRY,
    name: str = _NAME,
    year: int = _YEAR,
    replace: bool = _REPLACE,
    materialize_now: bool = _MATERIALIZE,
    district: str = typer.Option(
        "density", "--district", help="District aggregate: 'density' (sum per km²) or 'mean'."
    ),
) -> None:
    """Import a tile-level proxy (CSV column `value`, or a GeoTIFF)."""
    _import("proxies", file, country, name, year, replace, materialize_now, district)
