"""``siscore pog``: check annotators' POG files, measure their agreement, ensemble them.

Inputs (POGS, one or more paths): a folder is read as an annotation folder (``pogs.txt`` +
``annotators.txt`` and/or ``*.pog``); a ``*.pog`` file is one annotator's POG in either syntax,
named by its stem; any other file holds one line-syntax POG per line, named by ``--names``
(one name per line, same count) or ``annotator_1``, ...

Bad input exits 2 after printing exactly one line ``FILE:LINE:COL: problem`` to stderr; nothing
is written (outputs go through a temporary file that replaces ``--out`` only on success).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from siscore_assets.core.storage.files import atomic_path


class _Ranking:
    """``core.ranking``, imported on first use: it pulls in scipy (about 2 s), which every other
    ``siscore`` command (``countries``, a one-line error) should not wait for."""

    def __getattr__(self, name: str):
        from siscore_assets.core import ranking

        return getattr(ranking, name)


pogs = _Ranking()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Partial order graphs (POGs) of clusters: check, agreement, ensemble.",
)

Files = Annotated[list[Path], typer.Argument(help="POG files or annotation folders.")]
Names = Annotated[
    Path | None, typer.Option(help="Annotator names, one per line (for a file of POG lines).")
]

_IDS_HELP = (
    "Allowed cluster ids, e.g. '0-21' or '0-10,12'; any other id is an error. "
    "Default: any non-negative id."
)


class _BadInput(Exception):
    """Carries the one ``FILE:LINE:COL: problem`` line the CLI prints before exiting 2."""


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(str(exc).replace("\n", " "), err=True)
    return typer.Exit(2)


def _parse_ids(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    out: set[int] = set()
    col = 1
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise _BadInput(f"--ids:1:{col}: expected 'N' or 'N-M', got {part.strip()!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise _BadInput(f"--ids:1:{col}: empty range {part.strip()!r}")
        out.update(range(lo, hi + 1))
        col += len(part) + 1
    return sorted(out)


def _readable(path: Path) -> None:
    if not path.exists():
        raise _BadInput(f"{path}:1:1: no such file or folder")
    if path.is_file():
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise _BadInput(f"{path}:1:1: cannot read: {exc.strerror}") from exc


def load_pogs(
    paths: list[Path], names: Path | None, known_ids: list[int] | None
) -> dict[str, pogs.Pog]:
    """Every POG named on the command line, keyed by annotator name, in the order given."""
    if names is not None:
        _readable(names)
        if len(paths) != 1 or paths[0].is_dir() or paths[0].suffix == ".pog":
            raise _BadInput(f"{names}:1:1: --names pairs with exactly one file of POG lines")
    out: dict[str, pogs.Pog] = {}
    origin: dict[str, Path] = {}
    for path in paths:
        _readable(path)
        if path.is_dir():
            found = pogs.read_annotation_folder(path, known_ids=known_ids)
        elif path.suffix == ".pog":
            found = {path.stem: pogs.read_pog_file(path, known_ids=known_ids)}
        else:
            found = pogs.read_pog_lines(path, names, known_ids=known_ids)
        for name, pg in found.items():
            if name in out:
                raise _BadInput(
                    f"{path}:1:1: annotator name {name!r} is already used by {origin[name]}"
                )
            out[name] = pg
            origin[name] = path
    return out


def _locate(paths: list[Path], cluster: int) -> str:
    """``FILE:LINE:COL`` of the first mention of ``cluster`` outside comments."""
    word = re.compile(rf"(?<![0-9]){cluster}(?![0-9])")
    files = [
        f
        for p in paths
        for f in (sorted([*p.glob("pogs.txt"), *p.glob("*.pog")]) if p.is_dir() else [p])
    ]
    for f in files:
        for i, line in enumerate(f.read_text(encoding="utf-8").lstrip("\ufeff").split("\n"), 1):
            m = word.search(line.split("#", 1)[0])
            if m:
                return f"{f}:{i}:{m.start() + 1}"
    return f"{files[0]}:1:1"


def _write(out: Path, text: str) -> None:
    from siscore_assets.cli import errors

    errors.output_file(out, (), "output")
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")


@app.command()
def check(
    files: Files,
    names: Names = None,
    ids: str = typer.Option(None, help=_IDS_HELP),
) -> None:
    """Validate POG files; print one summary line per annotator."""
    try:
        found = load_pogs(files, names, _parse_ids(ids))
    except (pogs.PogError, _BadInput) as exc:
        raise _fail(exc) from exc
    for name, pg in found.items():
        kind = "total preorder" if pg.is_total() else "partial order"
        typer.echo(f"{name}: {len(pg.nodes)} clusters in {len(pg.equal)} tiers, {kind}")
    typer.echo(f"ok: {len(found)} POG(s)")


@app.command()
def agreement(
    files: Files,
    out: Annotated[
        Path, typer.Option("--out", help="CSV to write: square matrix, header and index = names.")
    ],
    names: Names = None,
    ids: str = typer.Option(None, help=_IDS_HELP),
    decimals: int = typer.Option(
        None,
        help="Round the CSV to this many decimals "
        "(default: full precision; the printed table is rounded either way).",
    ),
) -> None:
    """Kendall tau-b between every two annotators (tied clusters at their averaged rank)."""
    import pandas as pd

    try:
        if decimals is not None and decimals < 0:
            raise _BadInput(f"--decimals:1:1: expected 0 or more decimals, got {decimals}")
        found = load_pogs(files, names, _parse_ids(ids))
    except (pogs.PogError, _BadInput) as exc:
        raise _fail(exc) from exc
    clusters = sorted(set().union(*(pg.nodes for pg in found.values())))
    tau = pogs.agreement_matrix(list(found.values()), clusters)
    frame = pd.DataFrame(tau, index=list(found), columns=list(found))
    # Machine-readable output keeps every bit (pandas writes the shortest repr that reads back
    # to the same float); rounding is only for what is printed for people.
    _write(out, frame.to_csv(float_format=None if decimals is None else f"%.{decimals}f"))
    typer.echo(frame.to_string(float_format=lambda v: f"{v:.2f}"))
    off = tau[~np.eye(len(found), dtype=bool)]
    shared = off[np.isfinite(off)]  # NaN: the two share fewer than two clusters
    if shared.size:
        typer.echo(f"mean off-diagonal tau-b: {shared.mean():.3f} over {len(clusters)} clusters")
    elif off.size:
        typer.echo("no shared clusters: no two annotators rank two of the same clusters (no tau-b)")
    typer.echo(f"wrote {out}")


@app.command()
def ensemble(
    files: Files,
    out: Annotated[Path, typer.Option("--out", help="Ensembled POG file to write.")],
    names: Names = None,
    ids: str = typer.Option(None, help=_IDS_HELP),
    bottom: int = typer.Option(
        None, help="Add this cluster (the uninhabited one, e.g. 22) below all."
    ),
    tiers: int = typer.Option(
        None, help="Number of tiers (default: chosen by agreement with the annotators)."
    ),
    prune: int = typer.Option(0, help="Leave out the N clusters the annotators disagree on most."),
    fmt: str = typer.Option("line", "--format", help="'line' (3=4>1>0) or 'edges' (0<1 per line)."),
) -> None:
    """Robust ensemble of the annotators' POGs; prints the weights and the tiers."""
    try:
        if fmt not in ("line", "edges"):
            raise _BadInput(f"--format:1:1: expected 'line' or 'edges', got {fmt!r}")
        known = _parse_ids(ids)
        if bottom is not None and (bottom < 0 or (known is not None and bottom not in known)):
            allowed = "a non-negative cluster id" if known is None else f"one of --ids {ids}"
            raise _BadInput(f"--bottom:1:1: expected {allowed}, got {bottom}")
        found = load_pogs(files, names, known)
        if bottom is not None and any(bottom in pg.nodes for pg in found.values()):
            raise _BadInput(
                f"{_locate(files, bottom)}: cluster {bottom} is the --bottom cluster, "
                "so annotators must not rank it"
            )
        clusters = sorted(set().union(*(pg.nodes for pg in found.values())))
        try:
            result = pogs.ensemble(
                list(found.values()), clusters, names=list(found), n_tiers=tiers, prune=prune
            )
        except ValueError as exc:
            raise _BadInput(f"{files[0]}:1:1: {exc}") from exc
    except (pogs.PogError, _BadInput) as exc:
        raise _fail(exc) from exc
    final = result.pog if bottom is None else result.pog.with_bottom(bottom)
    _write(out, (final.to_line() + "\n") if fmt == "line" else final.to_edges())
    width = max(len(n) for n in result.names)
    typer.echo(f"{'annotator':<{width}}  weight")
    for name, w in zip(result.names, result.weights):
        typer.echo(f"{name:<{width}}  {w:.4f}")
    state = "converged" if result.converged else "NOT converged"
    typer.echo(f"{result.iterations} iterations, {state} (tol {1e-6:g})")
    if result.pruned:
        typer.echo(f"pruned (most disagreement): {', '.join(map(str, result.pruned))}")
    cons = dict(zip(clusters, result.consensus))
    typer.echo(f"{len(result.tiers)} tiers, most developed first (consensus in [0, 1]):")
    for k, tier in enumerate(reversed(result.tiers), start=1):
        vals = [cons[c] for c in tier]
        typer.echo(f"  {k:>2}: {'='.join(map(str, tier)):<24} {min(vals):.3f}-{max(vals):.3f}")
    if bottom is not None:
        typer.echo(f"  {len(result.tiers) + 1:>2}: {bottom:<24} (--bottom)")
    typer.echo(f"POG: {final.to_line()}")
    typer.echo(f"wrote {out}")
