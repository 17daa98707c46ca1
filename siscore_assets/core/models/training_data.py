"""Which images the scorer trains on and is checked on: per-cluster pools and a seeded hold-out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: A cluster's training pool drawn from the country's own tiles is capped at this many images.
MAX_IMAGES_PER_CLUSTER = 400


def split_holdout(
    images_by_cluster: dict[int, np.ndarray], per_cluster: int, seed: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Seeded split: ``per_cluster`` images of each cluster held out (at most half of it)."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for c, imgs in sorted(images_by_cluster.items()):
        k = min(per_cluster, len(imgs) // 2)
        order = rng.permutation(len(imgs))
        train[c], held[c] = imgs[np.sort(order[k:])], imgs[np.sort(order[:k])]
    return train, held


def pools_from_tiles(
    years: Iterable[tuple[np.ndarray, np.ndarray]],
    seed: int,
    max_per_cluster: int = MAX_IMAGES_PER_CLUSTER,
) -> dict[int, np.ndarray]:
    """Training images per cluster from the country's own tiles.

    ``years`` yields, per year, every usable tile's cluster id (NaN where the tile has none) and
    the year's image stack in the same order (a tile store: only the chosen rows are read); a
    cluster with more than ``max_per_cluster`` images over all years keeps a seeded sample."""
    rng = np.random.default_rng(seed)
    stacks: list = []
    parts: dict[int, list[tuple[int, np.ndarray]]] = {}
    for cid, stack in years:
        stacks.append(stack)
        for c in np.unique(cid[~pd.isna(cid)]).astype(int):
            parts.setdefault(int(c), []).append((len(stacks) - 1, np.flatnonzero(cid == c)))
    pools = {}
    for c, chunks in parts.items():
        year_of = np.concatenate([np.full(len(rows), y) for y, rows in chunks])
        row_of = np.concatenate([rows for _, rows in chunks])
        if len(row_of) > max_per_cluster:
            keep = np.sort(rng.choice(len(row_of), max_per_cluster, replace=False))
            year_of, row_of = year_of[keep], row_of[keep]
        pools[c] = np.concatenate(
            [np.asarray(stacks[y][row_of[year_of == y]]) for y in np.unique(year_of)]
        )
    return pools


def cluster_splits(
    images_by_cluster: dict[int, np.ndarray], test_per_cluster: int, val_per_cluster: int, seed: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(train, validation, test) per cluster, seeded: the test split is never trained on and never
    used for checkpoint selection; selection uses the validation split, carved from the rest."""
    rest, test = split_holdout(images_by_cluster, test_per_cluster, seed)
    train, val = split_holdout(rest, val_per_cluster, seed + 1)
    return train, val, test


def unlabelled_years(
    years: Iterable[tuple[Sequence[str], np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Every tile-year's image and its tile id as group (same id = the same place in another year)."""
    imgs, groups = [], []
    for ids, stack in years:
        imgs.append(np.asarray(stack))
        groups.extend(str(t) for t in ids)
    if not imgs:
        return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, dtype=object)
    return np.concatenate(imgs), np.asarray(groups, dtype=object)


#: Images per cluster of the validation split checkpoint selection uses (the recipe path).
VAL_PER_CLUSTER = 5
