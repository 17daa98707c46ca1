"""``siscore label``: the labelling kit of a country, and the merge of people's label exports into
soft habitation labels with their agreement.

Bad input exits 2 after printing exactly one line ``FILE:LINE: problem`` to stderr; nothing is
written (the output goes through a temporary file that replaces ``--out`` only on success).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Habitation labels by people: the labelling kit, and merging its exports.",
)


def _fail(message: str) -> SystemExit:
    """Print the one line; exit 2 (a ``SystemExit``: no command group rewrites it)."""
    typer.echo(message.replace("\n", " "), err=True)
    return SystemExit(2)


@app.command("merge")
def merge(
    inputs: Annotated[
        list[Path], typer.Argument(help="Exports (<name>.labels.csv) or folders holding them.")
    ],
    out: Annotated[Path, typer.Option(help="The merged CSV to write.")],
    kit: Annotated[
        Path | None,
        typer.Option(help="The kit page the labels came from: any other tile-year is an error."),
    ] = None,
) -> None:
    """Merge annotators' exports into soft labels (tile_id,year,urban,rural,uninhabited,
    n_annotators) and report their agreement (Fleiss' kappa, pairwise Cohen's kappa)."""
    from siscore_assets.cli import errors
    from siscore_assets.core.ranking import label_kit as labels
    from siscore_assets.core.storage.files import atomic_path

    errors.output_file(out, (), "merged labels")  # a folder, or a folder that is not there
    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = labels.export_files(p)
            if not found:
                raise _fail(f"{p}: no *{labels.EXPORT_SUFFIX} exports in this folder")
            files += found
        elif not p.is_file():
            raise _fail(f"{p}: no such file")
        else:
            files.append(p)
    try:
        known = labels.kit_tiles(kit) if kit is not None else None
        merged, agree, per_annotator = labels.merge_exports(files, known)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    with atomic_path(out) as tmp:
        merged.to_csv(tmp, index=False)
    kappa = f"{agree.fleiss_kappa:.3f}" if agree.fleiss_kappa == agree.fleiss_kappa else "n/a"
    typer.echo(
        f"{out}: {len(merged)} tile-years from {len(per_annotator)} annotator(s) "
        f"({', '.join(f'{k} {v}' for k, v in per_annotator.items())}); "
        f"Fleiss' kappa {kappa} over {agree.shared_items} tile-years labelled by two or more"
    )
    for row in agree.pairwise.itertuples():
        typer.echo(
            f"  {row.annotator_a} / {row.annotator_b}: {row.n_common} in common, "
            f"agreement {row.agreement:.3f}, Cohen's kappa {row.cohen_kappa:.3f}"
        )


@app.command("kit")
def kit(
    country: Annotated[str, typer.Option(help="Country code (its tiles must be ingested).")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the page (default: the country's folder).")
    ] = None,
    n: Annotated[int, typer.Option(min=1, help="Tile-years to show.")] = 240,
    seed: Annotated[int | None, typer.Option(help="Sample seed (default: the country's).")] = None,
) -> None:
    """Write a country's labelling kit from its usable tiles in the warehouse."""
    from siscore_assets.cli import errors
    from siscore_assets.core.countries import load_countries
    from siscore_assets.core.storage.files import atomic_path
    from siscore_assets.definitions import build_definitions
    from siscore_assets.defs.common.data import LABEL_KIT_FILE
    from siscore_assets.defs.ranking.labels import render_country_kit

    reg = load_countries()
    defs = build_definitions(reg)
    settings, warehouse = defs.resources["settings"], defs.resources["warehouse"]
    if out is not None:  # before the kit is built: that takes a while
        errors.output_file(out, (".html", ".htm"), "labelling kit")
    try:
        cfg = reg.get(country)
        page = render_country_kit(
            settings, warehouse, cfg, n, cfg.models.seed if seed is None else seed
        )
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(f"error: {exc}") from exc
    path = out or settings.country_dir(cfg.code) / LABEL_KIT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(page.html, encoding="utf-8")
    typer.echo(f"{path}: {len(page.tiles)} tile-years, {page.size_bytes / 1024:.0f} kB")
