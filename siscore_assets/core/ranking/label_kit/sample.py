"""Which tiles people label: a seeded sample spread over the tiles' appearance and over years.

A plain random sample of a country's tiles is mostly fields and forest; the few urban tiles the
habitation filter most needs would hardly appear.  So each year's candidates (a seeded pool, read
row by row from the tile store: never the whole year) are described by a dozen cheap numbers —
per-channel 10/50/90 % quantiles, luminance spread and mean gradient — standardised over all
candidates and grouped by a seeded k-means; the sample then takes one tile from each
(year, appearance group) stratum in turn, so rare looks and every year get their share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Candidates read per year at most (their features only are kept).
POOL_PER_YEAR = 400
#: Appearance groups (k-means clusters over the features).
STRATA = 8
FEATURE_PX = 64  # features are computed on tiles reduced to about this size
READ_BATCH = 64  # rows read from a store at a time


@dataclass(frozen=True)
class SampledTile:
    """One tile-year of the sample: where it comes from and the stratum that drew it."""

    tile_id: str
    year: int
    row: int  # row of the year's tile store
    stratum: int  # appearance group (k-means cluster id)


def appearance_features(images: np.ndarray) -> np.ndarray:
    """(N, 11) float32: RGB 10/50/90 % quantiles, luminance std and mean gradient magnitude of
    ``(N, H, W, 3)`` uint8 tiles (reduced by striding to about ``FEATURE_PX``)."""
    if images.ndim != 4 or images.shape[-1] < 3:
        raise ValueError(f"tiles of shape {images.shape}: need N x H x W x 3")
    step = max(1, images.shape[1] // FEATURE_PX)
    x = np.asarray(images[:, ::step, ::step, :3], dtype=np.float32) / 255.0
    flat = x.reshape(len(x), -1, 3)
    q = np.quantile(flat, [0.1, 0.5, 0.9], axis=1)  # (3, N, 3)
    lum = x @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.abs(np.diff(lum, axis=1)), np.abs(np.diff(lum, axis=2))
    grad = gy.mean(axis=(1, 2)) + gx.mean(axis=(1, 2))
    return np.column_stack([q.transpose(1, 0, 2).reshape(len(x), 9), lum.std(axis=(1, 2)), grad])


def kmeans(features: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Cluster ids of plain seeded k-means (k-means++ start); small and exact, no sklearn state."""
    n = len(features)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [features[rng.integers(n)]]
    for _ in range(1, k):
        d = np.min([((features - c) ** 2).sum(axis=1) for c in centres], axis=0)
        if d.sum() <= 0:
            break
        centres.append(features[rng.choice(n, p=d / d.sum())])
    c = np.stack(centres)
    labels = np.zeros(n, np.int64)
    for _ in range(iters):
        labels = ((features[:, None, :] - c[None]) ** 2).sum(axis=2).argmin(axis=1)
        new = np.stack(
            [
                features[labels == j].mean(axis=0) if (labels == j).any() else c[j]
                for j in range(len(c))
            ]
        )
        if np.allclose(new, c):
            break
        c = new
    return labels


def sample_tiles(
    years: Mapping[int, tuple[Sequence[str], Sequence[np.ndarray] | np.ndarray]],
    n: int,
    *,
    seed: int = 0,
    pool_per_year: int = POOL_PER_YEAR,
    strata: int = STRATA,
) -> list[SampledTile]:
    """Up to ``n`` tile-years from ``{year: (tile ids, tile store)}`` (the store indexed by row),
    spread over appearance and years; same input and seed, same sample."""
    if n < 1:
        raise ValueError(f"sample size must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    cand: list[tuple[int, int, str]] = []
    feats = []
    for year in sorted(years):
        ids, store = years[year]
        if not len(ids):
            continue
        take = min(pool_per_year, len(ids))
        rows = np.sort(rng.choice(len(ids), size=take, replace=False))
        for start in range(0, len(rows), READ_BATCH):
            batch = rows[start : start + READ_BATCH]
            feats.append(appearance_features(np.asarray(store[batch])))
        cand += [(int(year), int(r), str(ids[r])) for r in rows]
    if not cand:
        raise ValueError("no usable tiles to sample")
    f = np.concatenate(feats)
    f = (f - f.mean(axis=0)) / np.where(f.std(axis=0) > 0, f.std(axis=0), 1.0)
    groups = kmeans(f, strata, seed)
    cells: dict[tuple[int, int], list[int]] = {}
    for i, (year, _, _) in enumerate(cand):
        cells.setdefault((year, int(groups[i])), []).append(i)
    keys = sorted(cells, key=lambda k: (k[1], k[0]))  # group, then year: years alternate
    queues = [list(rng.permutation(cells[key])) for key in keys]
    picked: list[SampledTile] = []
    while len(picked) < n and any(queues):
        for key, queue in zip(keys, queues):
            if queue and len(picked) < n:
                year, row, tile_id = cand[int(queue.pop(0))]
                picked.append(SampledTile(tile_id, year, row, key[1]))
    return picked
