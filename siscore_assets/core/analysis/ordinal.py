"""Seed 004's hyperlocal score as a baseline: ordinal regression with linear thresholds.

A score ``f`` is trained only on the urban / rural / uninhabited soft labels: with thresholds
``t1 < t2`` the logits are ``[t1 - f, min(f - t1, t2 - f), f - t2]`` (uninhabited, rural,
urban; the paper's Eq. 5), ``f`` clamped to ``[t_min, t_max]``, and the loss is the soft-label
cross-entropy of their softmax (Eq. 6).  The paper's ``f`` is a CNN; here it is linear in the
same standardised colour / texture statistics as the feature ranker, so the two baselines differ
only in what they are trained on (soft labels here, the POG's tiers there).  Fitted by L-BFGS
with the exact gradient; deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

T1, T2 = 0.0, 10.0  # the paper's thresholds (rural-uninhabited, urban-rural)
T_MIN, T_MAX = -10.0, 20.0  # the paper's clamp


@dataclass(frozen=True)
class OrdinalFit:
    """``f = z @ coef + intercept`` on standardised statistics ``z``; ``low``/``high``: the 1st
    and 99th percentile of ``f`` on the training images (a [0, 1] scale, as the feature
    ranker's)."""

    coef: np.ndarray
    intercept: float
    low: float
    high: float
    loss: float


def _loss_grad(
    params: np.ndarray, z: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[float, np.ndarray]:
    w, b = params[:-1], params[-1]
    f = z @ w + b
    inside = (f > T_MIN) & (f < T_MAX)
    fc = np.clip(f, T_MIN, T_MAX)
    low_side = (fc - T1) < (T2 - fc)
    logits = np.stack([T1 - fc, np.where(low_side, fc - T1, T2 - fc), fc - T2], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -float(np.sum(y * logp)) / n + 0.5 * alpha * float(w @ w)
    dlogit = (np.exp(logp) * y.sum(axis=1, keepdims=True) - y) / n
    dfc = -dlogit[:, 0] + np.where(low_side, 1.0, -1.0) * dlogit[:, 1] + dlogit[:, 2]
    g = dfc * inside
    return loss, np.concatenate([z.T @ g + alpha * w, [g.sum()]])


def fit_ordinal(
    z: np.ndarray, soft_labels: np.ndarray, *, alpha: float = 1e-3, max_iter: int = 500
) -> OrdinalFit:
    """Fit on standardised statistics ``z`` (n, d) and soft labels (n, 3) in the pretraining
    set's order (urban, rural, uninhabited); rows without a label (all zero) are left out."""
    z = np.asarray(z, float)
    y = np.asarray(soft_labels, float)[:, ::-1]  # -> uninhabited, rural, urban
    keep = y.sum(axis=1) > 0
    if keep.sum() < 3 or len(np.unique(y[keep].argmax(axis=1))) < 2:
        raise ValueError("ordinal regression needs labelled images of at least two classes")
    z, y = z[keep], y[keep] / y[keep].sum(axis=1, keepdims=True)
    start = np.zeros(z.shape[1] + 1)
    start[-1] = (T1 + T2) / 2
    res = minimize(
        _loss_grad, start, args=(z, y, alpha), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter},
    )  # fmt: skip
    w, b = res.x[:-1], float(res.x[-1])
    f = z @ w + b
    low, high = np.percentile(f, [1, 99])
    return OrdinalFit(w, b, float(low), float(high), float(res.fun))
