"""Small numeric helpers of the synthetic country: noise, hashing, geometry, built fraction.

Shared by the renderer and the world; the built fraction and storeys live here because both
the pixels and the truth table derive from them, which keeps floor area faithful to the image.
"""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise (zero mean, unit std); padded so edges don't wrap."""
    ph, pw = shape[0] * 2, shape[1] * 2
    w = rng.standard_normal((ph, pw))
    fy = np.fft.fftfreq(ph)[:, None]
    fx = np.fft.rfftfreq(pw)[None, :]
    filt = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(w) * filt, s=(ph, pw))[: shape[0], : shape[1]]
    out = out - out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def seg_dist(
    px: np.ndarray, py: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    """Distance from points to the segment a-b (same units)."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    ll = dx * dx + dy * dy
    t = np.zeros_like(px) if ll == 0 else np.clip(((px - ax) * dx + (py - ay) * dy) / ll, 0, 1)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


def upsample_matrix(n_low: int, n_high: int) -> np.ndarray:
    """Smooth-step interpolation matrix (n_high, n_low) from a lattice spanning the tile to its
    pixel centres; the lattice's end points sit on the tile edges, so shared edge values give
    seamless textures between neighbouring tiles."""
    pos = (np.arange(n_high) + 0.5) / n_high * (n_low - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_low - 2)
    t = pos - i0
    t = t * t * (3 - 2 * t)
    m = np.zeros((n_high, n_low), dtype=np.float32)
    m[np.arange(n_high), i0] = 1 - t
    m[np.arange(n_high), i0 + 1] = t
    return m


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_F1 = np.uint64(0xBF58476D1CE4E5B9)
_F2 = np.uint64(0x94D049BB133111EB)


def hash01(seed: int, stream: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) from integer lattice coordinates (splitmix64): noise keyed by *global*
    position, so textures continue across tile edges and don't depend on the rendered block."""
    k = np.array([(int(seed) * 1_000_003 + int(stream) * 7919) % 2**63], dtype=np.uint64)
    h = (np.asarray(a, dtype=np.int64).view(np.uint64) * _M1) ^ (
        np.asarray(b, dtype=np.int64).view(np.uint64) * _M2
    )
    h = h ^ (k * _M3)
    h ^= h >> np.uint64(30)
    h *= _F1
    h ^= h >> np.uint64(27)
    h *= _F2
    h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-x))


def built_fraction(development: np.ndarray) -> np.ndarray:
    """Share of a tile's building lots that carry a building, from latent development.

    Shared by the renderer and the truth table, so floor area is faithful to what is visible.
    """
    d = np.clip(np.asarray(development, dtype=np.float64), 0.0, 1.0)
    return np.where(d > 0, np.clip(0.01 + 0.95 * d**1.25, 0.0, 1.0), 0.0)


def floors_for(built: np.ndarray) -> np.ndarray:
    """Mean storeys: one in villages, high-rise where dense."""
    return 1.0 + 5.0 * np.asarray(built, dtype=np.float64) ** 2
