"""Tiering: cut 1-D consensus values into ordered tiers, choosing how many.

Each tier count k is solved exactly by 1-D k-means (dynamic programming over the sorted values,
so tiers are contiguous and ties never split); k is the one that agrees best with the
annotators (Kendall tau-b), or the gap statistic without them.  Above :data:`EXACT_TIERS_MAX`
values the O(k n^2) DP gives way to Lloyd's 1-D k-means so that 10^4 clusters stay cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["EXACT_TIERS_MAX", "choose_tiers", "cluster_order", "path_ranks", "tier_ranks"]


def tier_ranks(tiers: Sequence[Sequence[int]]) -> dict[int, float]:
    """Each cluster's tier index (0 = least developed): the order every figure compares to."""
    return {int(c): float(i) for i, tier in enumerate(tiers) for c in tier}


def path_ranks(paths: Sequence[Sequence[Sequence[int]]]) -> dict[int, float]:
    """Each cluster's mean tier index over the POG paths it lies on (a partial order's rank)."""
    seen: dict[int, list[float]] = {}
    for path in paths:
        for ti, tier in enumerate(path):
            for c in tier:
                seen.setdefault(int(c), []).append(float(ti))
    return {c: float(np.mean(v)) for c, v in seen.items()}


def cluster_order(means: dict[int, float], rank: dict[int, float]) -> float:
    """Spearman rho of clusters' mean scores vs their tier index (clusters with both; NaN
    under 3): how well a scorer keeps the annotators' order of the clusters."""
    cs = [c for c in sorted(means) if c in rank]
    if len(cs) < 3:
        return float("nan")
    return float(stats.spearmanr([means[c] for c in cs], [rank[c] for c in cs]).statistic)


def _kmeans_1d_dp(
    v: np.ndarray, k_max: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact 1-D k-means of sorted rows by dynamic programming, for every k in 1..k_max at once.

    ``v`` is (B, n), each row sorted.  ``allowed[b, i]`` says a segment may start at i (so
    equal values are never split).  Returns the minimal SSE per row and k, shape (B, k_max),
    and the back-pointers needed by :func:`_segments`.  O(B * k_max * n^2).
    """
    b_n, n = v.shape
    s1 = np.concatenate([np.zeros((b_n, 1)), np.cumsum(v, axis=1)], axis=1)
    s2 = np.concatenate([np.zeros((b_n, 1)), np.cumsum(v * v, axis=1)], axis=1)
    i_idx, j_idx = np.triu_indices(n + 1, k=1)
    cost = np.full((b_n, n + 1, n + 1), np.inf)  # cost[b, i, j]: SSE of v[b, i:j]
    seg = (s2[:, j_idx] - s2[:, i_idx]) - (s1[:, j_idx] - s1[:, i_idx]) ** 2 / (j_idx - i_idx)
    cost[:, i_idx, j_idx] = np.maximum(seg, 0.0)
    start_ok = np.ones((b_n, n + 1), dtype=bool)
    if allowed is not None:
        start_ok[:, :n] = allowed
    start_ok[:, 0] = False  # after the first segment nothing starts at 0
    split_cost = np.where(start_ok[:, :, None], cost, np.inf)
    best = cost[:, 0, :].copy()  # one segment covering v[:, :j]
    sse = np.full((b_n, k_max), np.inf)
    sse[:, 0] = best[:, n]
    back: list[np.ndarray] = []
    for k in range(1, k_max):
        cand = best[:, :, None] + split_cost  # (B, i, j): last segment v[i:j]
        arg = np.argmin(cand, axis=1)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0, :]
        back.append(arg)
        sse[:, k] = best[:, n]
    return sse, back


def _segments(back: list[np.ndarray], k: int, n: int) -> list[int]:
    """Start indices of the k optimal segments of row 0, from the DP back-pointers."""
    starts: list[int] = []
    j = n
    for arg in reversed(back[: k - 1]):
        j = int(arg[0, j])
        starts.append(j)
    return [0, *reversed(starts)]


def _tau_b_against(candidates: np.ndarray, ranks: np.ndarray, block: int = 8192) -> np.ndarray:
    """Kendall tau-b of each candidate rank vector (K, C; complete) against each row of
    ``ranks`` (A, C; NaN = not ranked), over the clusters the row ranks: shape (A, K)."""
    r = np.asarray(ranks, dtype=float)
    iu = np.triu_indices(r.shape[1], k=1)
    sx = np.sign(candidates[:, iu[0]] - candidates[:, iu[1]])  # (K, P)
    out = np.empty((r.shape[0], len(candidates)))
    for lo in range(0, r.shape[0], block):
        chunk = r[lo : lo + block]
        valid = ~np.isnan(chunk)
        both = (valid[:, iu[0]] & valid[:, iu[1]]).astype(np.float32)
        sr = np.sign(np.where(valid, chunk, 0.0)[:, iu[0]] - np.where(valid, chunk, 0.0)[:, iu[1]])
        sr = sr.astype(np.float32) * both
        num = sr @ sx.T.astype(np.float32)
        den = np.abs(sr).sum(axis=1, keepdims=True) * (both @ np.abs(sx).T.astype(np.float32))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo : lo + block] = np.where(den > 0, num / np.sqrt(den), np.nan)
    return out


# Above this many clusters the exact DP (O(k n^2) time and memory) gives way to Lloyd's 1-D
# k-means and per-annotator scipy tau-b (O(n log n)): 10,000 clusters would need ~3 GB.
EXACT_TIERS_MAX = 1500


def _choose_tiers_large(
    v: np.ndarray,
    distinct: int,
    *,
    n_tiers: int | None,
    max_tiers: int,
    ranks: np.ndarray | None,
    weights: np.ndarray | None,
    seed: int,
) -> list[list[int]]:
    """choose_tiers for many clusters: Lloyd's k-means on the sorted 1-D values (its cells are
    intervals, so tiers stay contiguous and equal values stay together), k by the same
    annotator-agreement criterion, tau-b by scipy per annotator.  ``seed`` is unused: the
    starts (quantiles, and an even grid over the range) are deterministic."""
    from scipy.stats import kendalltau

    sv = np.sort(v)

    def lloyd(centres: np.ndarray) -> tuple[np.ndarray, float]:
        # hand-written: with sorted values an iteration is one searchsorted + one reduceat,
        # O(n); scikit-learn's threaded KMeans is ~100x slower on 1-D data on a busy machine
        for _ in range(300):
            cuts = np.searchsorted(sv, (centres[1:] + centres[:-1]) / 2, side="right")
            starts = np.unique(np.concatenate([[0], cuts]))
            starts = starts[starts < len(sv)]
            new = np.add.reduceat(sv, starts) / np.diff(np.append(starts, len(sv)))
            if len(new) == len(centres) and np.allclose(new, centres, rtol=0, atol=1e-12):
                break
            centres = new
        cuts = np.searchsorted(sv, (centres[1:] + centres[:-1]) / 2, side="right")
        sse = sum(float(((seg - seg.mean()) ** 2).sum()) for seg in np.split(sv, cuts) if len(seg))
        return centres, sse

    def tiers_for(k: int) -> list[list[int]]:
        uniq = np.unique(sv)
        starts = [
            uniq[np.linspace(0, len(uniq) - 1, k).round().astype(int)],
            np.linspace(sv[0], sv[-1], k),
        ]
        centres = min((lloyd(np.unique(c)) for c in starts), key=lambda cs: cs[1])[0]
        label = np.searchsorted((centres[1:] + centres[:-1]) / 2, v, side="left")
        groups = [np.flatnonzero(label == lab) for lab in range(len(centres))]
        return [sorted(g.tolist()) for g in groups if len(g)]

    if n_tiers is not None:
        if not 1 <= n_tiers <= distinct:
            raise ValueError(f"n_tiers must be in 1..{distinct} (distinct consensus values)")
        return tiers_for(n_tiers)
    if ranks is None:
        raise ValueError(
            f"more than {EXACT_TIERS_MAX} values: pass the annotators' ranks or n_tiers"
        )
    r = np.asarray(ranks, dtype=float)
    w = np.ones(len(r)) if weights is None else np.asarray(weights, dtype=float)
    best, best_score = None, -np.inf
    for k in range(2, min(max_tiers, distinct) + 1):
        tiers = tiers_for(k)
        level = np.empty(len(v))
        for i, t in enumerate(tiers):
            level[t] = i
        taus = np.array(
            [
                kendalltau(level[ok], row[ok], variant="b").statistic
                for row in r
                for ok in [~np.isnan(row)]
            ]
        )
        good = ~np.isnan(taus)
        score = float((taus[good] * w[good]).sum() / w[good].sum()) if good.any() else -np.inf
        if score > best_score + 1e-12:
            best, best_score = tiers, score
    return best if best is not None else [sorted(range(len(v)))]


def choose_tiers(
    values: np.ndarray,
    *,
    n_tiers: int | None = None,
    max_tiers: int = 12,
    ranks: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    n_refs: int = 100,
    seed: int = 0,
) -> list[list[int]]:
    """Group 1-D consensus values into ordered tiers (index lists, lowest values first).

    Each k is solved exactly by 1-D k-means (dynamic programming over the sorted values, so
    tiers are contiguous and equal values are never split).  Without ``n_tiers``, k ranges over
    ``2..min(max_tiers, distinct values)`` and the criterion is:

    * with ``ranks`` (A, C) (what :func:`ensemble` passes): the k whose tiering agrees best
      with the annotators -- highest ``weights``-weighted mean Kendall tau-b against each row.
      Tau-b charges both for splitting what annotators tie and for tying what they order, so
      the tier count follows the annotators' own granularity.  No randomness.
    * without: the gap statistic (Tibshirani et al. 2001), ``mean(log W_k*) - log W_k`` with
      ``W_k`` the within-tier SSE and ``W_k*`` that of ``n_refs`` uniform samples on
      [min, max] from ``default_rng(seed)``.

    Ties go to fewer tiers; a single distinct value gives one tier.  (Mean silhouette and the
    gap "first k within one s.e." rule were tried and rejected: on the NK POGs both stop at the
    urban/rural split, k = 2, which is useless for ranking.)
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or not np.isfinite(v).all():
        raise ValueError("values must be a finite 1-D array")
    n = len(v)
    if n == 0:
        return []
    order = np.argsort(v, kind="stable")
    sv = v[order]
    allowed = np.concatenate([[True], sv[1:] > sv[:-1]])
    distinct = int(allowed.sum())

    def tiers_for(k: int, back: list[np.ndarray]) -> list[list[int]]:
        bounds = [*_segments(back, k, n), n]
        return [sorted(order[bounds[t] : bounds[t + 1]].tolist()) for t in range(k)]

    if n > EXACT_TIERS_MAX and distinct > 1:
        return _choose_tiers_large(
            v,
            distinct,
            n_tiers=n_tiers,
            max_tiers=max_tiers,
            ranks=ranks,
            weights=weights,
            seed=seed,
        )
    if n_tiers is not None:
        if not 1 <= n_tiers <= distinct:
            raise ValueError(f"n_tiers must be in 1..{distinct} (distinct consensus values)")
        _, back = _kmeans_1d_dp(sv[None, :], n_tiers, allowed[None, :])
        return tiers_for(n_tiers, back)
    if distinct == 1:
        return [sorted(order.tolist())]
    k_max = min(max_tiers, distinct)
    sse, back = _kmeans_1d_dp(sv[None, :], k_max, allowed[None, :])
    ks = range(2, k_max + 1)
    if ranks is not None:
        cand = np.empty((len(ks), n))
        for row, k in enumerate(ks):
            for level, tier in enumerate(tiers_for(k, back)):
                cand[row, tier] = level
        tau = _tau_b_against(cand, ranks)  # (A, K)
        w = np.ones(len(tau)) if weights is None else np.asarray(weights, dtype=float)
        ok = ~np.isnan(tau)
        score = (np.where(ok, tau, 0.0) * w[:, None]).sum(axis=0) / (ok * w[:, None]).sum(axis=0)
    else:
        rng = np.random.default_rng(seed)
        refs = np.sort(rng.uniform(sv[0], sv[-1], size=(n_refs, n)), axis=1)
        floor = 1e-12 * float(((sv - sv.mean()) ** 2).sum())  # exact fits: W_k = 0
        ref_sse = np.concatenate(
            [
                _kmeans_1d_dp(chunk, k_max)[0]
                for chunk in np.array_split(refs, max(1, n_refs * n * n // 20_000_000))
            ]
        )
        gap = np.log(np.maximum(ref_sse, floor)).mean(axis=0) - np.log(np.maximum(sse[0], floor))
        score = gap[1:]
    best = int(np.flatnonzero(score >= np.nanmax(score) - 1e-12)[0])
    return tiers_for(ks[best], back)
