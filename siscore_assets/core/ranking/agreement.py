"""Agreement between annotators: their POGs as a rank matrix, and pairwise Kendall tau-b.

Both the agreement table (Table S1) and the ensemble start from the same (annotators, clusters)
matrix of averaged ranks, NaN where an annotator is silent; tau-b is computed for all pairs at
once so that tens of annotators over thousands of clusters stay a few matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siscore_assets.core.ranking.graph import Pog

__all__ = ["agreement_matrix", "kendall_tau_b_matrix", "rank_matrix", "stated_matrix"]


def rank_matrix(pogs: Sequence[Pog], ids: Sequence[int]) -> np.ndarray:
    """Stack ``rank_vector`` of every POG: (A, C), NaN where an annotator is silent.

    Stored with the longer axis contiguous (column-major when annotators outnumber clusters),
    the layout :func:`reweight_fast` streams through BLAS without a transpose."""
    out = np.empty((len(pogs), len(ids)), order="F" if len(pogs) > len(ids) else "C")
    for a, pog in enumerate(pogs):
        out[a] = pog.rank_vector(ids)
    return out


def stated_matrix(pogs: Sequence[Pog], ids: Sequence[int]) -> np.ndarray:
    """(A, P) over the cluster pairs i < j of ``ids``: whether each annotator stated the pair's
    relation (less, more or equal; ``Pog.stated_pairs``)."""
    return np.array([pog.stated_pairs(ids) for pog in pogs], dtype=bool).reshape(
        len(pogs), len(ids) * (len(ids) - 1) // 2
    )


def agreement_matrix(pogs: Sequence[Pog], ids: Sequence[int]) -> np.ndarray:
    """Kendall tau-b between annotators over the pairs both stated: an incomparable pair (the
    method's fourth relation) is neither agreement nor disagreement."""
    return kendall_tau_b_matrix(rank_matrix(pogs, ids), stated_matrix(pogs, ids))


def kendall_tau_b_matrix(rank_vectors: np.ndarray, stated: np.ndarray | None = None) -> np.ndarray:
    """Pairwise Kendall tau-b between annotators over the clusters both ranked (``stated``:
    (A, P) over the cluster pairs i < j, only the pairs both annotators stated count).

    Computed for all pairs at once from pairwise sign matrices; equals
    ``scipy.stats.kendalltau(x, y, variant='b')`` on the shared clusters (NaN where that is
    undefined: fewer than two shared clusters, or one side all ties).  The diagonal is 1.
    Memory is O(A * C^2).
    """
    r = np.asarray(rank_vectors, dtype=float)
    if r.ndim != 2:
        raise ValueError("rank_vectors must be 2-D (annotators, clusters)")
    c_n = r.shape[1]
    valid = ~np.isnan(r)
    filled = np.where(valid, r, 0.0)
    iu = np.triu_indices(c_n, k=1)
    sign = np.sign(filled[:, iu[0]] - filled[:, iu[1]])  # (A, P) over cluster pairs i<j
    both = valid[:, iu[0]] & valid[:, iu[1]]
    if stated is not None:
        both &= np.asarray(stated, dtype=bool)
    both = both.astype(float)
    sign *= both
    untied = np.abs(sign)
    num = sign @ sign.T
    den_x = untied @ both.T  # pairs untied in row annotator, among clusters both ranked
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / np.sqrt(den_x * den_x.T)
    tau[(den_x == 0) | (den_x.T == 0)] = np.nan
    np.fill_diagonal(tau, 1.0)
    return np.clip(tau, -1.0, 1.0)
