"""``siscore sample nk``: the North Korea sample from the paper's public repository."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from siscore_assets.cli import errors

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Public samples to try the platform on real imagery.",
)


@app.command()
def nk(
    dest: Annotated[
        Path | None,  # noqa: UP045
        typer.Option(
            help="Folder to fill (default: <data root>/nk_sample, where `make nk` looks)."
        ),
    ] = None,
) -> None:
    """Download the North Korea sample (tiles, labelled images, clusters, the 10 POGs; never the
    paper's evaluation files) from github.com/DonghyunAhn/development-measure (MIT)."""
    from siscore_assets.core import nk_sample

    root = os.environ.get("SISCORE_DATA_ROOT") or "data"
    folder = errors.output_folder(Path(dest or Path(root) / "nk_sample"))
    api = os.environ.get("SISCORE_SAMPLE_API", nk_sample.API)
    raw = os.environ.get("SISCORE_SAMPLE_RAW", nk_sample.RAW)
    try:
        counts = nk_sample.fetch(folder, api=api, raw=raw, log=typer.echo)
    except nk_sample.SampleError as exc:
        errors.fail(str(exc))
    parts = ", ".join(f"{part} {n}" for part, n in sorted(counts.items()))
    typer.echo(f"wrote {folder}: {parts} files")
    typer.echo(
        f"next: SISCORE_PRK_ROOT={folder.absolute()} siscore run --country PRK  (or make nk)"
    )


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="sample")
