"""``siscore country add``: a new country from an AOI (or a bbox), years and a STAC endpoint,
appended to the user's countries file -- ``--file`` when given (an explicit option wins), else
``$SISCORE_COUNTRIES``, else ``~/.config/siscore/countries.yaml`` -- never to the packaged one."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from siscore_assets.cli import errors

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Countries: add one to your countries file.",
)

#: The file written when neither ``--file`` nor ``$SISCORE_COUNTRIES`` names one.
USER_FILE = Path("~/.config/siscore/countries.yaml")


def _target(file: Path | None) -> Path:
    from siscore_assets.core.countries import ENV_COUNTRIES

    chosen = file or (Path(os.environ[ENV_COUNTRIES]) if os.environ.get(ENV_COUNTRIES) else None)
    path = Path(chosen or USER_FILE).expanduser().absolute()
    packaged = Path(str(resources.files("siscore_assets.config").joinpath("countries.yaml")))
    if path.resolve() == packaged.resolve():
        errors.fail(
            f"{path} is the packaged countries file; copy it (cp {packaged} ~/my_countries.yaml), "
            "then export SISCORE_COUNTRIES=~/my_countries.yaml or pass --file"
        )
    if path.is_dir():
        errors.fail(f"--file {path} is a folder")
    return path


def _years(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?", text)
    if m is None or int(m.group(2) or m.group(1)) < int(m.group(1)):
        errors.fail(f"--years {text!r}: expected YEAR or FIRST-LAST, e.g. 2016-2024")
    return int(m.group(1)), int(m.group(2) or m.group(1))


@app.command()
def add(
    code: Annotated[str, typer.Argument(help="Country code: upper-case letters/digits, e.g. LAO.")],
    years: str = typer.Option(..., help="Year range, e.g. 2016-2024."),
    stac: str = typer.Option(..., help="STAC API endpoint (http(s) URL of the API root)."),
    aoi: Annotated[
        Path | None,  # noqa: UP045
        typer.Option(help="AOI polygons: GeoJSON, GeoPackage or shapefile, any CRS."),
    ] = None,
    bbox: str = typer.Option(None, help="Instead of --aoi: W,S,E,N in degrees."),
    name: str = typer.Option(None, help="Country name (default: the code)."),
    file: Annotated[
        Path | None,  # noqa: UP045
        typer.Option(
            help=f"Countries file to append to (default: $SISCORE_COUNTRIES, else {USER_FILE})."
        ),
    ] = None,
) -> None:
    """Append a STAC country to your countries file; prints its tile count, disk and next steps."""
    from siscore_assets.core import country_entry as ce
    from siscore_assets.core.countries import load_countries

    if (aoi is None) == (bbox is None):
        errors.fail("give exactly one of --aoi FILE or --bbox W,S,E,N")
    if not (code.isalnum() and code.isupper()):
        errors.fail(f"country code {code!r}: upper-case letters/digits, e.g. LAO")
    first, last = _years(years)
    if not re.match(r"^https?://\S+$", stac):
        errors.fail(f"--stac {stac!r}: expected an http(s) URL of a STAC API")
    target = _target(file)
    packaged = resources.files("siscore_assets.config").joinpath("countries.yaml")
    template = packaged.read_text(encoding="utf-8")
    import yaml

    known = (
        load_countries(target).countries
        if target.is_file()
        else yaml.safe_load(template)["countries"]
    )
    if code in known:
        errors.fail(f"{target}: country {code} is already configured")
    try:
        area = ce.read_aoi(aoi) if aoi is not None else ce.bbox_aoi(bbox)
        count = ce.count_tiles(area, 14)
        ce.check_tiles(count, str(aoi or "--bbox"), 14)
    except ce.AoiError as exc:
        errors.fail(str(exc))
    tiles = count.tiles
    aoi_file = target.parent / "aoi" / f"{code}.geojson"
    had_aoi = aoi_file.exists()
    ce.write_aoi(area, aoi_file)
    entry = ce.entry_text(code, name or code, (first, last), stac, str(aoi_file), area)
    try:
        ce.append_entry(target, code, entry, template)
    except Exception:
        if not had_aoi:  # nothing half-written: the entry was not added, its AOI goes too
            aoi_file.unlink(missing_ok=True)
        raise
    n_years = last - first + 1
    gb = tiles * n_years * ce.TILE_BYTES / 1e9
    typer.echo(f"added {code} to {target} (AOI kept as {aoi_file})")
    typer.echo(
        f"{tiles:,} zoom-14 tiles ({count.on_land:,} on land) x {n_years} "
        f"year{'s' if n_years > 1 else ''} = "
        f"{tiles * n_years:,} tile-years; "
        f"tile store ~{gb:.3g} GB at 256 px (what the `cpu` recipe reads; `small` can keep "
        "source.store_px: 64, 1/16 of that)"
    )
    typer.echo(
        f"while a year is read its read records need ~{tiles * ce.RECORD_BYTES / 1e9:.3g} GB "
        "more at 256 px RGB (a B08 band adds a quarter; deleted once the year is indexed)"
    )
    typer.echo("next steps:")
    if os.environ.get("SISCORE_COUNTRIES") != str(target):
        typer.echo(f"  export SISCORE_COUNTRIES={target}")
    typer.echo(f"  siscore countries                      # checks the entry and lists {code}")
    typer.echo(
        f"  siscore run --country {code} --years {first}   # one year first: imagery, label kit"
    )
    typer.echo(
        f"  label tiles with <data root>/{code}/label_kit.html, exports into <data root>/{code}/"
        "labels/, then siscore run again (pretrain: kit)"
    )
    typer.echo("  docs/countries.md: annotations, districts, proxies, covariates, model settings")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="country")
