"""Ordinal regression with linear thresholds: exact gradient, class order, deterministic fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad

from siscore_assets.core.analysis import ordinal


def _data(n: int = 300, seed: int = 0):
    """A latent development d; labels by thresholds on d, softened as four voters would."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(size=n)
    z = np.column_stack([d + rng.normal(0, 0.1, n), rng.normal(size=n)])
    z = (z - z.mean(0)) / z.std(0)
    cls = np.where(d > 0.6, 0, np.where(d > 0.25, 1, 2))  # urban, rural, uninhabited
    soft = np.eye(3)[cls] * 0.75 + 0.25 / 3
    return d, z, soft


def test_gradient_is_exact():
    _, z, soft = _data(50)
    y = soft[:, ::-1]
    f = lambda p: ordinal._loss_grad(p, z, y, 0.01)[0]  # noqa: E731
    g = lambda p: ordinal._loss_grad(p, z, y, 0.01)[1]  # noqa: E731
    for p in (np.array([0.5, -0.2, 4.0]), np.array([3.0, 1.0, 6.0])):
        assert check_grad(f, g, p) < 1e-5


def test_fit_orders_the_classes_and_is_deterministic():
    d, z, soft = _data()
    fit = ordinal.fit_ordinal(z, soft)
    f = z @ fit.coef + fit.intercept
    assert np.corrcoef(f, d)[0, 1] > 0.9
    assert fit.coef[0] > 0 and abs(fit.coef[1]) < 0.2 * fit.coef[0]
    cls = soft.argmax(1)
    assert f[cls == 0].mean() > f[cls == 1].mean() > f[cls == 2].mean()
    again = ordinal.fit_ordinal(z, soft)
    np.testing.assert_array_equal(fit.coef, again.coef)
    assert fit.low < fit.high


def test_needs_two_classes():
    _, z, soft = _data(20)
    with pytest.raises(ValueError, match="at least two classes"):
        ordinal.fit_ordinal(z, np.tile([1.0, 0, 0], (20, 1)))
