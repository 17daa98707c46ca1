"""Toy tiles for the scorer's tests: the share of bright 'built' pixels grows with a level."""

from __future__ import annotations

import numpy as np

PX = 16
#: Two POG paths over five clusters: 2 and 3 share a tier, the second path skips them.
PATHS = [[[0], [1], [2, 3], [4]], [[0], [1], [4]]]


def toy_images(
    levels: np.ndarray, seed: int, px: int = PX, built=(200, 195, 190), noise: float = 10.0
) -> np.ndarray:
    """uint8 (N, px, px, 3): a noisy green background with a ``level``-driven share built up."""
    rng = np.random.default_rng(seed)
    levels = np.asarray(levels, dtype=float)
    img = np.empty((len(levels), px, px, 3))
    img[...] = (60, 110, 50)
    mask = rng.random((len(levels), px, px)) < levels[:, None, None] * 0.8 + 0.05
    img[mask] = built
    img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def toy_clusters(k: int, per: int, seed: int, px: int = PX) -> dict[int, np.ndarray]:
    """``k`` clusters of ``per`` images, cluster c at level c / (k - 1) with a little spread."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in range(k):
        lv = np.clip(c / (k - 1) + rng.normal(0, 0.05, per), 0, 1)
        out[c] = toy_images(lv, seed + 100 + c, px)
    return out


def flat_clusters(k: int = 3, per: int = 8, seed: int = 0, px: int = PX) -> dict[int, np.ndarray]:
    """``k`` clusters of ``per`` images each at exactly level c / (k - 1), bluer built pixels."""
    return {c: blue_images(np.full(per, c / (k - 1)), seed + c, px) for c in range(k)}


def blue_images(levels: np.ndarray, seed: int, px: int = PX) -> np.ndarray:
    """:func:`toy_images` with the bluer built pixels of :func:`flat_clusters`."""
    return toy_images(levels, seed, px, built=(170, 180, 200), noise=8.0)
