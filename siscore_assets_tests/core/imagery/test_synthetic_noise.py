"""The synthetic country's numeric helpers: keyed noise, smooth noise, geometry, built fraction."""

from __future__ import annotations

import numpy as np

from siscore_assets.core.imagery.synthetic.noise import (
    built_fraction,
    floors_for,
    hash01,
    seg_dist,
    smooth_noise,
    upsample_matrix,
)


def test_hash01_uniform_and_keyed_by_position() -> None:
    a, b = np.mgrid[0:64, 0:64]
    h = hash01(7, 1, a, b)
    assert h.shape == (64, 64) and h.min() >= 0 and h.max() < 1
    assert abs(h.mean() - 0.5) < 0.02
    # the value at a lattice point does not depend on the batch it is computed in
    assert np.array_equal(hash01(7, 1, a[10:20, 5:9], b[10:20, 5:9]), h[10:20, 5:9])
    assert not np.array_equal(hash01(7, 2, a, b), h)
    assert not np.array_equal(hash01(8, 1, a, b), h)


def test_smooth_noise_standardised_and_seeded() -> None:
    n = smooth_noise(np.random.default_rng(0), (30, 20), 3.0)
    assert n.shape == (30, 20)
    assert abs(n.mean()) < 1e-9 and abs(n.std() - 1) < 1e-9
    assert np.array_equal(n, smooth_noise(np.random.default_rng(0), (30, 20), 3.0))


def test_upsample_matrix_interpolates() -> None:
    m = upsample_matrix(5, 64)
    assert m.shape == (64, 5) and m.dtype == np.float32
    assert np.allclose(m.sum(axis=1), 1) and (m >= 0).all()


def test_seg_dist() -> None:
    px, py = np.array([0.0, 1.0, 3.0, 1.0]), np.array([0.0, 0.0, 0.0, 2.0])
    assert np.allclose(seg_dist(px, py, (0.0, 0.0), (2.0, 0.0)), [0, 0, 1, 2])
    assert np.allclose(seg_dist(px, py, (1.0, 0.0), (1.0, 0.0)), [1, 0, 2, 2])  # a point


def test_built_fraction_and_floors() -> None:
    d = np.linspace(-0.5, 1.5, 201)
    b = built_fraction(d)
    assert (b[d <= 0] == 0).all() and (b[d > 0] > 0).all() and b.max() <= 1
    assert (np.diff(b) >= 0).all()
    assert floors_for(np.array([0.0]))[0] == 1 and floors_for(np.array([1.0]))[0] == 6
