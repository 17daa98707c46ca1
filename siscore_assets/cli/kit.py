"""`siscore kit`: the annotation kit for clusters that come as a folder of images.

The warehouse route is the `annotation_kit` asset; this is for clusters made elsewhere, e.g. the
shared NK sample's `clusters/<id>/*.png` (the paper's 22 clusters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def kit(
    clusters: Annotated[Path, typer.Option(help="Folder of clusters: <folder>/<cluster id>/*.png")],
    out: Annotated[Path, typer.Option(help="Where to write the HTML page")],
    title: str = typer.Option("Rank the clusters", help="Page title"),
    country: str = typer.Option("", help="Country name or code shown on the page"),
    samples: int = typer.Option(8, min=1, help="Sample tiles shown per cluster"),
    seed: int = typer.Option(0, help="Seed for choosing the samples"),
) -> None:
    """Write a self-contained annotation kit page (opens from file://, no server, no network)."""
    from siscore_assets.cli import errors
    from siscore_assets.core.ranking.annotation_kit import folder_clusters, render_annotation_kit
    from siscore_assets.core.storage.files import atomic_path

    errors.output_file(out, (".html", ".htm"), "annotation kit")
    try:
        page = render_annotation_kit(
            folder_clusters(clusters), title=title, country=country, samples=samples, seed=seed
        )
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for problem in page.skipped:
        typer.echo(f"skipped {problem}", err=True)
    with atomic_path(out) as tmp:
        tmp.write_text(page.html, encoding="utf-8")
    typer.echo(f"{out}: {len(page.clusters)} clusters, {page.size_bytes / 1024:.0f} kB")
