"""Annotators' label exports -> soft habitation labels (vote fractions), and their agreement.

An export is ``<annotator>.labels.csv`` with the header ``tile_id,year,label`` and one row per
labelled tile-year (skipped tiles are not written).  Merging is all or nothing: the first bad row
of any file stops it with one line ``FILE:LINE: problem``.  The merged table is the contract the
habitation training reads (``MERGED_COLUMNS``): per tile-year the share of annotators who said
urban, rural, uninhabited (summing to 1) and how many labelled it.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("urban", "rural", "uninhabited")
EXPORT_HEADER = ("tile_id", "year", "label")
EXPORT_SUFFIX = ".labels.csv"
MERGED_COLUMNS = ["tile_id", "year", *CLASSES, "n_annotators"]
TILE_ID_RE = re.compile(r"^\d{1,2}/\d+/\d+$")
#: A browser's mark on a second download of one file (``ann (1).labels.csv``,
#: ``ann.labels (1).csv``): never part of a kit name (letters, digits, ``_ - .``).
DUPLICATE_RE = re.compile(r"\s*\(\d+\)(?=(\.labels)?\.csv$)")
#: Two exports with the same labels are one person's file saved twice from this many labels on:
#: below it two people may well agree on every tile they saw.
COPY_LABELS = 20


class LabelFileError(ValueError):
    """A bad export: the message is the one line ``FILE:LINE: problem``."""


@dataclass(frozen=True)
class Agreement:
    """How far annotators agree: Fleiss' kappa over tile-years labelled by two or more (raters
    may differ per tile), and per pair raw agreement and Cohen's kappa on what both labelled."""

    fleiss_kappa: float
    shared_items: int
    pairwise: pd.DataFrame  # annotator_a, annotator_b, n_common, agreement, cohen_kappa


def annotator_of(path: Path) -> str:
    """``kim.labels.csv`` -> ``kim`` (a plain ``kim.csv`` -> ``kim``); a browser's second
    download ``kim (1).labels.csv`` is still ``kim``, not another annotator.  The export holds
    no name (``tile_id,year,label``): the file name is the annotator's, as the kit saved it."""
    name = DUPLICATE_RE.sub("", path.name)
    return name[: -len(EXPORT_SUFFIX)] if name.endswith(EXPORT_SUFFIX) else Path(name).stem


def export_files(folder: Path) -> list[Path]:
    """The exports dropped into a folder (``*.labels.csv``, and a browser's second download
    ``*.labels (1).csv``, so that it is refused, not left out unseen), sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob("*.csv")
        if p.is_file()
        and not p.name.startswith(".")
        and DUPLICATE_RE.sub("", p.name).endswith(EXPORT_SUFFIX)
    )


def read_export(
    path: Path, known: Collection[tuple[str, int]] | None = None
) -> list[tuple[str, int, str]]:
    """One annotator's (tile_id, year, label) rows, checked: a ``LabelFileError`` names the file
    and line of an empty export, a bad header, an unknown tile-year (``known``: the tile-years
    that may be labelled; None: any well-formed id), a label outside the three, a repeat."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(f"{path}:1: cannot read the export ({exc})") from exc
    lines = list(csv.reader(text.splitlines()))
    if not lines or not any(c.strip() for c in lines[0]):
        raise LabelFileError(f"{path}:1: empty export (no header, no labels)")
    if tuple(c.strip().lower() for c in lines[0]) != EXPORT_HEADER:
        raise LabelFileError(f"{path}:1: expected the header {','.join(EXPORT_HEADER)}")
    rows: list[tuple[str, int, str]] = []
    first: dict[tuple[str, int], int] = {}
    for line, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 3:
            raise LabelFileError(f"{path}:{line}: expected 3 columns, got {len(cells)}")
        tile_id, year_text, label = (c.strip() for c in cells)
        if not TILE_ID_RE.match(tile_id):
            raise LabelFileError(f"{path}:{line}: tile id {tile_id!r} is not z/x/y")
        try:
            year = int(year_text)
        except ValueError:
            raise LabelFileError(
                f"{path}:{line}: year {year_text!r} is not a whole number"
            ) from None
        if label.lower() not in CLASSES:
            raise LabelFileError(
                f"{path}:{line}: label {label!r} is not one of {', '.join(CLASSES)}"
            )
        if known is not None and (tile_id, year) not in known:
            raise LabelFileError(f"{path}:{line}: unknown tile {tile_id} in {year}")
        if (tile_id, year) in first:
            raise LabelFileError(
                f"{path}:{line}: tile {tile_id} in {year} labelled twice by "
                f"{annotator_of(path)} (first on line {first[(tile_id, year)]})"
            )
        first[(tile_id, year)] = line
        rows.append((tile_id, year, label.lower()))
    if not rows:
        raise LabelFileError(f"{path}:2: empty export (a header and no labels)")
    return rows


def read_exports(
    files: Iterable[Path], known: Collection[tuple[str, int]] | None = None
) -> dict[str, list[tuple[str, int, str]]]:
    """``{annotator: rows}`` of several exports.  Two files of one annotator (by name, a
    browser's ``(1)`` aside) or with the same labels (a copy under another name) are an error:
    counted twice, one person's labels would read as two people agreeing."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    seen: dict[str, Path] = {}
    contents: dict[frozenset, Path] = {}
    for path in files:
        name = annotator_of(Path(path))
        if name in seen:
            raise LabelFileError(
                f"{path}:1: annotator {name!r} already exported in {seen[name]} "
                "(keep one file per annotator: a second download is a copy)"
            )
        seen[name] = Path(path)
        out[name] = read_export(Path(path), known)
        same = contents.setdefault(frozenset(out[name]), Path(path))
        if same != Path(path) and len(out[name]) >= COPY_LABELS:
            raise LabelFileError(
                f"{path}:1: the same {len(out[name])} labels as {same}: one export saved twice? "
                "(a copy would count as a second annotator)"
            )
    if not out:
        raise LabelFileError("no label exports given")
    return out


def vote_counts(labels: Mapping[str, list[tuple[str, int, str]]]) -> pd.DataFrame:
    """Per tile-year, how many annotators chose each class (columns ``CLASSES``)."""
    frame = pd.DataFrame(
        [(t, y, lab) for rows in labels.values() for t, y, lab in rows],
        columns=["tile_id", "year", "label"],
    )
    counts = pd.crosstab([frame["tile_id"], frame["year"]], frame["label"])
    counts = counts.reindex(columns=list(CLASSES), fill_value=0)
    counts.columns.name = None
    return counts.reset_index().sort_values(["tile_id", "year"], ignore_index=True)


def soft_labels(labels: Mapping[str, list[tuple[str, int, str]]]) -> pd.DataFrame:
    """The merged table (``MERGED_COLUMNS``): vote fractions per tile-year, summing to 1."""
    counts = vote_counts(labels)
    n = counts[list(CLASSES)].sum(axis=1)
    out = counts[["tile_id", "year"]].copy()
    for c in CLASSES:
        out[c] = counts[c] / n
    out["n_annotators"] = n.astype(np.int64)
    out["year"] = out["year"].astype(np.int64)
    out = out[MERGED_COLUMNS]
    out.columns.name = None
    return out


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an (items, classes) count matrix; items may have different numbers of
    raters (each needs two or more).  NaN when chance agreement is perfect or no item is shared."""
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts.sum(axis=1) >= 2]
    if not len(counts):
        return float("nan")
    n = counts.sum(axis=1)
    p_item = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_class = counts.sum(axis=0) / n.sum()
    p_e = float((p_class**2).sum())
    if p_e >= 1.0:
        return float("nan")
    return float((p_item.mean() - p_e) / (1.0 - p_e))


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' labels of the same items (NaN if chance agreement is 1)."""
    if not a:
        return float("nan")
    x, y = np.asarray(a), np.asarray(b)
    p_o = float((x == y).mean())
    p_e = sum(float((x == c).mean()) * float((y == c).mean()) for c in CLASSES)
    return float("nan") if p_e >= 1.0 else (p_o - p_e) / (1.0 - p_e)


def agreement(labels: Mapping[str, list[tuple[str, int, str]]]) -> Agreement:
    """Fleiss' kappa over the shared tile-years and every pair's agreement and Cohen's kappa."""
    counts = vote_counts(labels)
    mat = counts[list(CLASSES)].to_numpy()
    pairs = []
    by = {name: {(t, y): lab for t, y, lab in rows} for name, rows in labels.items()}
    for a, b in itertools.combinations(sorted(by), 2):
        common = sorted(set(by[a]) & set(by[b]))
        la, lb = [by[a][k] for k in common], [by[b][k] for k in common]
        pairs.append(
            {
                "annotator_a": a,
                "annotator_b": b,
                "n_common": len(common),
                "agreement": float(np.mean([p == q for p, q in zip(la, lb)])) if common else np.nan,
                "cohen_kappa": cohen_kappa(la, lb),
            }
        )
    cols = ["annotator_a", "annotator_b", "n_common", "agreement", "cohen_kappa"]
    return Agreement(
        fleiss_kappa(mat), int((mat.sum(axis=1) >= 2).sum()), pd.DataFrame(pairs, columns=cols)
    )


def merge_exports(
    files: Iterable[Path], known: Collection[tuple[str, int]] | None = None
) -> tuple[pd.DataFrame, Agreement, dict[str, int]]:
    """(soft labels, agreement, labels per annotator) of a set of exports; all or nothing."""
    labels = read_exports(files, known)
    return soft_labels(labels), agreement(labels), {k: len(v) for k, v in labels.items()}
