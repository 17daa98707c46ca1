"""The robust ensemble: many annotators' POGs -> one tiered POG that down-weights outliers.

Annotators are re-weighted by their distance to the weighted consensus (``w ∝ exp(-d^2 /
sigma^2)`` with a robust, floored scale) until the consensus settles; the consensus is then cut
into tiers (:mod:`.tiers`).  The iteration comes twice: :func:`reweight_reference`, plain
float64, is the specification; :func:`reweight_fast`, float32 BLAS, is what runs on 10^5
annotators or 10^4 clusters, and is tested against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from siscore_assets.core.ranking.agreement import rank_matrix
from siscore_assets.core.ranking.graph import Pog
from siscore_assets.core.ranking.tiers import choose_tiers

__all__ = [
    "SCALE_FLOOR",
    "EnsembleResult",
    "ensemble",
    "ensemble_ranks",
    "normalise_ranks",
    "reweight_fast",
    "reweight_reference",
]


@dataclass
class EnsembleResult:
    """The ensembled POG and how it was reached.

    ``consensus`` is in [0, 1] over ``ids`` (higher = more developed); ``tiers`` are least
    developed first, each a sorted id list; ``weights`` (sum 1) follow ``names``.
    ``disagreement`` (over ``ids``) is the weighted RMS distance of the annotators' normalised
    ranks from the consensus; ``pruned`` lists the ids left out of the POG for it (most
    disputed first; empty unless pruning was asked for).
    """

    pog: Pog
    weights: np.ndarray
    consensus: np.ndarray
    tiers: list[list[int]]
    iterations: int
    names: list[str]
    converged: bool = True
    disagreement: np.ndarray | None = None
    pruned: list[int] = field(default_factory=list)


def normalise_ranks(ranks: np.ndarray) -> np.ndarray:
    """Map each row's ranks onto [0, 1] (1 = most developed among what it ranked)."""
    r = np.asarray(ranks, dtype=float)
    lo = np.nanmin(r, axis=1, keepdims=True)
    hi = np.nanmax(r, axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (r - lo) / np.where(span > 0, span, 1.0), 0.5)
    return np.where(np.isnan(r), np.nan, out)


# The robust scale never falls below this share of the first round's mean squared distance:
# without a floor, a median of 0 (half the annotators identical) flips between "every outlier
# at weight 0" and a fallback scale, and the iteration oscillates instead of converging.
SCALE_FLOOR = 0.01


def _weights_from_d2(d2: np.ndarray, floor: float) -> np.ndarray:
    """``w ∝ exp(-d^2 / sigma^2)``, ``sigma^2 = max(median(d^2), floor)`` (robust scale), sum 1.

    ``floor`` ~ 0 (every annotator identical at the start) gives equal weights.  Shifting by
    ``min(d^2)`` changes nothing after normalising but avoids underflow.
    """
    d2 = np.asarray(d2, dtype=np.float64)
    if floor <= 1e-12:
        return np.full(len(d2), 1.0 / len(d2))
    sigma2 = max(float(np.median(d2)), floor)
    w = np.exp(-(d2 - d2.min()) / sigma2)
    return w / w.sum()


def reweight_reference(
    x: np.ndarray, mask: np.ndarray, *, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """The robust re-weighting written plainly in float64: the specification the fast path
    (:func:`reweight_fast`) is tested against, and the benchmark's baseline.

    ``x`` (A, C): normalised ranks (anything where ``mask`` is False); returns
    ``(weights, consensus, iterations, converged)``.
    """
    m = np.asarray(mask, dtype=bool)
    x = np.where(m, np.asarray(x, dtype=np.float64), 0.0)
    mf = m.astype(np.float64)
    counts = mf.sum(axis=1)
    plain = x.sum(axis=0) / mf.sum(axis=0)

    def consensus_of(w: np.ndarray) -> np.ndarray:
        den = w @ mf
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (w @ x) / den
        return np.where(den > 0, c, plain)  # ranked only by zero-weight annotators: plain mean

    w = np.full(len(x), 1.0 / len(x))
    cons = consensus_of(w)
    floor = -1.0
    for it in range(1, max_iter + 1):
        d2 = (((x - cons) ** 2) * mf).sum(axis=1) / counts  # squared RMS distance per annotator
        if it == 1:
            floor = SCALE_FLOOR * float(d2.mean())
        w = _weights_from_d2(d2, floor)
        new = consensus_of(w)
        step = float(np.linalg.norm(new - cons))
        cons = new
        if step < tol:
            return w, cons, it, True
    return w, cons, max_iter, False


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # ~2 ms to build; limiting through it then costs ~10 us


def _median(v: np.ndarray) -> float:
    """``np.median`` of a 1-D array via one ``np.partition`` (np.median costs ~5x more)."""
    n = len(v)
    h = n // 2
    part = np.partition(v, h)
    if n % 2:
        return float(part[h])
    return (float(part[:h].max()) + float(part[h])) / 2.0


def reweight_fast(
    x: np.ndarray, mask: np.ndarray | None = None, *, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Same iteration as :func:`reweight_reference`, built for 10^5 annotators or 10^4 clusters.

    The (A, C) matrix is copied once to float32, centred on its column means, keeping its
    layout: pass it with the longer axis contiguous (:func:`rank_matrix` returns many-annotator
    matrices column-major) -- a 100,000 x 22 row-major float32 matrix-vector product is ~60x
    slower in multi-threaded OpenBLAS, and a row-major input is transposed here (~10 ms).
    Each round is then two BLAS matrix-vector products -- ``X e`` for the distances, via
    ``|x - c|^2 = |x - mu|^2 - 2 (x - mu).e + |e|^2`` with ``e = c - mu`` (masked likewise),
    and ``w X`` for the consensus -- plus an O(A) partition (median) and exp, in float32; no
    Python loop over annotators.  Centring keeps the float32 cancellation small; the consensus
    and the convergence test stay float64.  ``mask=None`` means complete rankings and skips
    the mask products.  BLAS runs single-threaded here: these products are memory-bound, and
    OpenBLAS's threads only add hand-off latency (badly so on a loaded 2-core machine).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _reweight_fast(np.asarray(x), mask, tol, max_iter)


def _reweight_fast(
    x: np.ndarray, mask: np.ndarray | None, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    a_n, c_n = x.shape
    order = "F" if a_n > c_n else "C"
    if mask is None or bool(np.all(mask)):
        mf = None
        x64 = np.asarray(x, dtype=np.float64)
        # column means by BLAS (the sum over a row-major axis is slow); any centre is exact
        # here because the same float32 centre is added back to the consensus
        mu32 = ((np.ones(a_n) @ x64) / a_n).astype(np.float32)
        xc = np.empty((a_n, c_n), dtype=np.float32, order=order)
        np.subtract(x64, mu32, out=xc, casting="same_kind")  # one fused pass: centre + float32
        mu = mu32.astype(np.float64)
        counts = np.float32(c_n)
    else:
        m = np.asarray(mask, dtype=bool)
        mf = np.array(m, dtype=np.float32, order=order)
        mu = np.where(m, x, 0.0).sum(axis=0) / m.sum(axis=0)  # also the plain-mean fallback
        xc = np.array(np.where(m, x - mu, 0.0), dtype=np.float32, order=order)
        counts = m.sum(axis=1).astype(np.float32)
    sq = np.einsum("ac,ac->a", xc, xc)  # |x_a - mu|^2 over what a ranked (float32)

    def consensus_of(w32: np.ndarray) -> np.ndarray:
        num = (w32 @ xc).astype(np.float64)
        if mf is None:
            return mu + num / float(w32.sum(dtype=np.float64))
        den = (w32 @ mf).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, mu + num / den, mu)

    w = np.full(a_n, 1.0 / a_n, dtype=np.float32)
    cons = consensus_of(w)
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is returned
        e = cons - mu  # the consensus in centred coordinates
        d2 = xc @ (-2.0 * e).astype(np.float32)
        d2 += sq
        d2 += np.float32(e @ e) if mf is None else mf @ (e * e).astype(np.float32)
        d2 /= counts  # may dip below 0 by rounding: harmless, only d2 - min(d2) is used
        if it == 1:
            floor = SCALE_FLOOR * float(d2.mean(dtype=np.float64))
        if floor <= 1e-12:
            w = np.full(a_n, 1.0 / a_n, dtype=np.float32)
        else:
            sigma2 = max(_median(d2), floor)
            d2 -= d2.min()
            d2 *= np.float32(-1.0 / sigma2)
            w = np.exp(d2, out=d2)
        new = consensus_of(w)
        step = float(np.linalg.norm(new - cons))
        cons = new
        if step < tol:
            break
    else:
        it, step = max_iter, np.inf
    w64 = w.astype(np.float64)
    return w64 / w64.sum(), cons, it, step < tol


def ensemble_ranks(
    ranks: np.ndarray,
    ids: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    n_tiers: int | None = None,
    prune: int = 0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    fast: bool = True,
) -> EnsembleResult:
    """Robust re-weighted consensus of an (A, C) rank matrix (NaN = not ranked); see ensemble."""
    r = np.asarray(ranks, dtype=float)
    ids = [int(i) for i in ids]
    if r.ndim != 2 or r.shape[1] != len(ids):
        raise ValueError(f"ranks must be (annotators, {len(ids)}), got {r.shape}")
    a_n = r.shape[0]
    if a_n == 0:
        raise ValueError("ensemble needs at least one POG")
    names = [f"annotator_{k}" for k in range(1, a_n + 1)] if names is None else list(names)
    if len(names) != a_n:
        raise ValueError(f"{len(names)} names for {a_n} POGs")
    mask = ~np.isnan(r)
    empty = ~mask.any(axis=1)
    if empty.any():
        raise ValueError(f"POG(s) {[names[i] for i in np.flatnonzero(empty)]} rank none of ids")
    unranked = ~mask.any(axis=0)
    if unranked.any():
        raise ValueError(f"no POG ranks cluster(s) {[ids[i] for i in np.flatnonzero(unranked)]}")
    if not 0 <= prune <= len(ids) - 1:
        raise ValueError(f"prune must be in 0..{len(ids) - 1} (clusters - 1), got {prune}")
    x = np.where(mask, normalise_ranks(r), 0.0)
    if fast:
        w, cons, it, converged = reweight_fast(
            x, None if mask.all() else mask, tol=tol, max_iter=max_iter
        )
    else:
        w, cons, it, converged = reweight_reference(x, mask, tol=tol, max_iter=max_iter)
    m = mask.astype(float)
    wm = w @ m
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt((w @ (((x - cons) ** 2) * m)) / wm)
    spread = np.where(wm > 0, spread, 0.0)
    keep = np.ones(len(ids), dtype=bool)
    pruned: list[int] = []
    if prune:
        worst = np.argsort(-spread, kind="stable")[:prune]
        keep[worst] = False
        pruned = [ids[i] for i in worst]
    kept = np.flatnonzero(keep)
    tiers_idx = choose_tiers(cons[kept], n_tiers=n_tiers, ranks=r[:, kept], weights=w)
    tiers = [sorted(ids[kept[i]] for i in t) for t in tiers_idx]
    return EnsembleResult(
        pog=Pog.from_tiers(tiers),
        weights=w,
        consensus=cons,
        tiers=tiers,
        iterations=it,
        names=names,
        converged=converged,
        disagreement=spread,
        pruned=pruned,
    )


def ensemble(
    pogs: Sequence[Pog],
    ids: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    n_tiers: int | None = None,
    prune: int = 0,
    tol: float = 1e-6,
    max_iter: int = 1000,
    fast: bool = True,
) -> EnsembleResult:
    """Ensemble annotators' POGs into one tiered POG that down-weights outlying annotators.

    1. Each POG's ``rank_vector`` over ``ids`` is normalised to [0, 1] over the clusters it
       ranks; clusters it does not mention are *masked* (not imputed): they count neither in
       its distance nor in the consensus for that cluster.
    2. Start from equal weights; consensus = weighted masked mean.  Each round,
       ``d_a^2`` = mean squared difference to the consensus over the clusters ``a`` ranked,
       ``sigma^2 = median(d^2)`` (robust scale; floored at ``SCALE_FLOOR`` times the first
       round's mean ``d^2``, equal weights when every annotator is identical) and
       ``w_a ∝ exp(-d_a^2 / sigma^2)`` --
       weight *falls* with distance (the ``1 - exp(...)`` variant would reward outliers).
       Stop when ``||Δconsensus||_2 < tol`` or after ``max_iter`` rounds (``converged`` says
       which).  ``fast`` picks :func:`reweight_fast` (float32 BLAS) over
       :func:`reweight_reference` (plain float64); they agree to ~1e-6.
    3. Optional pruning: the ``prune`` clusters with the largest weighted RMS disagreement
       (annotators' normalised ranks around the consensus) are left out of the output POG --
       Stage 3 then trains on no path through them.
    4. Tiers: :func:`choose_tiers` on the consensus -- exact 1-D k-means for each k, k chosen
       to maximise the weighted mean Kendall tau-b between the tiering and the annotators
       (``n_tiers`` fixes k instead); the output POG is the total preorder of those tiers.
    """
    names = list(names) if names is not None else None
    return ensemble_ranks(
        rank_matrix(pogs, ids),
        ids,
        names=names,
        n_tiers=n_tiers,
        prune=prune,
        tol=tol,
        max_iter=max_iter,
        fast=fast,
    )
