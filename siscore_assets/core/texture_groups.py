"""Tiles with planted visual groups: ground truth for judging unsupervised clustering.

Four rotation-invariant textures stand in for kinds of place (a dot lattice ~ dense roofs,
coarse blobs ~ fields, fine noise ~ scrub, a line grid ~ a street grid).  Each tile gets a
random phase or random content plus a random brightness and contrast, nuisances that carry
no group information (as haze and season do on real tiles).  Groups 0-1 are called urban and
2-3 rural, so the urban/rural split of Stage 1 can be exercised too.
"""

from __future__ import annotations

import numpy as np

N_GROUPS = 4


def planted_textures(
    n_per_group: int,
    px: int,
    seed: int,
    *,
    brightness: tuple[float, float] = (0.35, 0.55),
    contrast: tuple[float, float] = (0.07, 0.13),
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (4 * n_per_group, px, px, 3), group id per image), grouped in order."""
    if px < 8 or px % 4:
        raise ValueError(f"px must be a multiple of 4 and >= 8, got {px}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:px, 0:px]
    grid_period = max(4, px // 3 + 1 if px < 24 else px // 4)
    imgs, truth = [], []
    for group in range(N_GROUPS):
        for _ in range(n_per_group):
            if group == 0:  # dot lattice, period 3
                ph = rng.integers(0, 3, 2)
                base = (((yy + ph[0]) % 3 == 0) & ((xx + ph[1]) % 3 == 0)).astype(float)
            elif group == 1:  # coarse blobs on a 4 x 4 grid
                base = np.kron(rng.random((4, 4)), np.ones((px // 4, px // 4)))
            elif group == 2:  # fine noise
                base = rng.random((px, px))
            else:  # line grid
                ph = rng.integers(0, grid_period, 2)
                base = (((yy + ph[0]) % grid_period == 0) | ((xx + ph[1]) % grid_period == 0)).astype(float)
            base = (base - base.mean()) / (base.std() + 1e-6)
            level = rng.uniform(*brightness) + rng.uniform(*contrast) * base
            imgs.append(np.repeat((np.clip(level, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1))
            truth.append(group)
    return np.stack(imgs), np.asarray(truth, dtype=np.int64)
