"""Pictures a person looks at: contact sheets of sample tiles."""

from __future__ import annotations

import numpy as np


def contact_sheet(images: np.ndarray, cols: int = 8, pad: int = 2) -> np.ndarray:
    """A grid of sample tiles in one RGB image: how a person checks a cluster at a glance."""
    n = len(images)
    if n == 0:
        return np.zeros((8, 8, 3), np.uint8)
    h, w = images.shape[1:3]
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        sheet[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = images[k]
    return sheet


def cluster_sheet(
    images: np.ndarray, labels: np.ndarray, n_clusters: int, seed: int, per_row: int = 8
) -> np.ndarray:
    """One row of ``per_row`` seeded sample tiles per cluster id 0..n_clusters-1 (blank where a
    cluster has fewer): what an annotator will look at."""
    rng = np.random.default_rng(seed)
    rows = []
    for cid in range(n_clusters):
        idx = np.flatnonzero(labels == cid)
        pick = rng.choice(idx, size=min(per_row, len(idx)), replace=False) if len(idx) else []
        row = np.zeros((per_row,) + images.shape[1:], np.uint8)
        row[: len(pick)] = images[np.sort(pick)] if len(pick) else row[:0]
        rows.append(row)
    return contact_sheet(np.concatenate(rows), cols=per_row)
