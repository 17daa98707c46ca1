"""Habitation labels of a country's own tiles (the labelling kit's merged soft labels) as the
pretraining set, beside the paper-style folder of images + ``labels.csv``.

The kit writes ``tile_id,year,urban,rural,uninhabited,n_annotators`` (``tile_id`` ``z/x/y`` as in
the warehouse); a pretrain folder whose ``labels.csv`` has that header is read here: every row
must name a usable tile-year of the country, once, with non-negative vote shares.  A bad row is
one error naming the file and line, and nothing is written.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("tile_id", "year", "urban", "rural", "uninhabited")


def is_tile_labels(path: Path) -> bool:
    """Whether a ``labels.csv`` names tiles (``tile_id``, ``year``) rather than images."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return {"tile_id", "year"} <= {h.strip() for h in header}


def read_tile_labels(path: Path) -> pd.DataFrame:
    """The rows of a tile-label CSV: tile_id, year, the three shares (normalised to sum 1) and
    ``line`` (its line in the file); errors are ``FILE:LINE: problem``."""
    path = Path(path)
    rows, seen = [], {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}:1: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            tile = (row["tile_id"] or "").strip()
            parts = tile.split("/")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise ValueError(f"{path}:{line}: tile_id {tile!r} is not z/x/y")
            try:
                year = int(row["year"])
                shares = [float(row[c]) for c in COLUMNS[2:]]
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: bad year or share ({exc})") from exc
            if min(shares) < 0 or sum(shares) <= 0 or not np.isfinite(shares).all():
                raise ValueError(f"{path}:{line}: shares must be non-negative, not all zero")
            if (tile, year) in seen:
                raise ValueError(
                    f"{path}:{line}: {tile} {year} already labelled on line {seen[(tile, year)]}"
                )
            seen[(tile, year)] = line
            total = sum(shares)
            rows.append((tile, year, *(s / total for s in shares), line))
    if not rows:
        raise ValueError(f"{path}: no labelled tiles")
    return pd.DataFrame(rows, columns=[*COLUMNS, "line"])


def locate(labels: pd.DataFrame, index: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Each label's ``image_row`` in its year's usable tiles (``index``: year, tile_id,
    image_row); a label naming no usable tile-year is an error naming its line."""
    merged = labels.merge(
        index[["year", "tile_id", "image_row"]], on=["year", "tile_id"], how="left"
    )
    unknown = merged[merged["image_row"].isna()]
    if len(unknown):
        first = unknown.iloc[0]
        raise ValueError(
            f"{path}:{int(first['line'])}: {first['tile_id']} {int(first['year'])} is not a usable "
            f"tile-year of the country ({len(unknown)} such row(s))"
        )
    merged["image_row"] = merged["image_row"].astype(np.int64)
    return merged
