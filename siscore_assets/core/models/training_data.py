"""Which images the scorer trains on and is checked on: per-cluster pools and a seeded hold-out."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

#: A cluster's training pool drawn from the country's own tiles is capped at this many images.
MAX_IMAGES_PER_CLUSTER = 400


def split_holdout(images_by_cluster: dict[int, np.ndarray], per_cluster: int, seed: int
                  ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Seeded split: ``per_cluster`` images of each cluster held out (at most half of it)."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for c, imgs in sorted(images_by_cluster.items()):
        k = min(per_cluster, len(imgs) // 2)
        order = rng.permutation(len(imgs))
        train[c], held[c] = imgs[np.sort(order[k:])], imgs[np.sort(order[:k])]
    return train, held


def pools_from_tiles(years: Iterable[tuple[np.ndarray, np.ndarray]], seed: int,
                     max_per_cluster: int = MAX_IMAGES_PER_CLUSTER) -> dict[int, np.ndarray]:
    """Training images per cluster from the country's own tiles.

    ``years`` yields, per year, every usable tile's cluster id (NaN where the tile has none) and
    the year's image stack in the same order; a cluster with more than ``max_per_cluster``
    images over all years keeps a seeded sample of them."""
    rng = np.random.default_rng(seed)
    parts: dict[int, list[np.ndarray]] = {}
    for cid, stack in years:
        for c in np.unique(cid[~pd.isna(cid)]).astype(int):
            parts.setdefault(int(c), []).append(np.asarray(stack[np.flatnonzero(cid == c)]))
    pools = {}
    for c, chunks in parts.items():
        imgs = np.concatenate(chunks)
        if len(imgs) > max_per_cluster:
            imgs = imgs[np.sort(rng.choice(len(imgs), max_per_cluster, replace=False))]
        pools[c] = imgs
    return pools
