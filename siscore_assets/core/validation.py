"""Validation of siScore (and baselines) against external proxies of development.

* Grid level: Spearman rank correlation per (model score, proxy) over tiles, with a bootstrap
  percentile confidence interval.  Ranks, because siScore is only meant to *order* places.
* District level: OLS ``log(proxy + 1) ~ const + score`` per pair, reporting R².  We always use
  ``log1p`` of the proxy: building area, population and nightlights are non-negative and
  heavily right-skewed, and the log makes R² about relative, not absolute, differences.
  Rows where ``log1p(proxy)`` is not finite (proxy <= -1, NaN) are dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

GRID_COLUMNS = ["model", "proxy", "n", "n_dropped", "spearman_rho", "p_value", "ci_low", "ci_high"]
DISTRICT_COLUMNS = ["model", "proxy", "n", "r2", "slope", "p_value"]
#: Transform applied to proxies in :func:`district_validation`.
PROXY_TRANSFORM = "log1p"
_BOOT_CELLS = 4_000_000  # resample-matrix cells per chunk (~32 MB of float64)


def _finite_pair(df: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    x = pd.to_numeric(df[a], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(df[b], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def bootstrap_spearman(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = 200, seed: int = 0
) -> np.ndarray:
    """Spearman rho of ``n_boot`` paired resamples (with replacement), vectorised.

    Each resample is re-ranked (average ranks, so duplicates drawn twice tie, as in
    ``spearmanr``) and rho is the Pearson correlation of the ranks.  Resamples with a constant
    column give NaN.
    """
    n = len(x)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // max(n, 1))
    for s in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - s), n))
        rx = stats.rankdata(x[idx], axis=1)
        ry = stats.rankdata(y[idx], axis=1)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        num = (rx * ry).sum(axis=1)
        den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + len(idx)] = np.where(den > 0, num / den, np.nan)
    return out


def grid_validation(
    df: pd.DataFrame,
    score_cols: list[str],
    proxy_cols: list[str],
    *,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Tile-level Spearman rho for every (score, proxy) pair, with a bootstrap CI.

    Each pair uses every row where both values are finite; the rest are ``n_dropped``.  The
    CI is the percentile interval of :func:`bootstrap_spearman` (``1 - alpha``); every pair is
    resampled with the same ``seed``, so results don't depend on column order.  Pairs with
    fewer than 3 rows, or a constant column, get NaN statistics.
    """
    rows = []
    for s in score_cols:
        for p in proxy_cols:
            x, y = _finite_pair(df, s, p)
            n = len(x)
            rho = pval = lo = hi = np.nan
            if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                res = stats.spearmanr(x, y)
                rho, pval = float(res.statistic), float(res.pvalue)
                if n_boot > 0:
                    boots = bootstrap_spearman(x, y, n_boot=n_boot, seed=seed)
                    if np.isfinite(boots).any():
                        lo, hi = np.nanpercentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            rows.append({"model": s, "proxy": p, "n": n, "n_dropped": len(df) - n,
                         "spearman_rho": rho, "p_value": pval,
                         "ci_low": float(lo), "ci_high": float(hi)})
    out = pd.DataFrame(rows, columns=GRID_COLUMNS)
    out.attrs.update(n_boot=n_boot, seed=seed, alpha=alpha)
    return out


def district_validation(
    district_df: pd.DataFrame, score_cols: Sequence[str], proxy_cols: Sequence[str]
) -> pd.DataFrame:
    """District-level OLS ``log1p(proxy) ~ const + score`` for every pair: n, R², slope, p.

    Rows where the score or ``log1p(proxy)`` is not finite are dropped.  Pairs with fewer than
    3 rows or a constant score get NaN statistics.
    """
    rows = []
    for s in score_cols:
        for p in proxy_cols:
            score = pd.to_numeric(district_df[s], errors="coerce").to_numpy(dtype=float)
            proxy = pd.to_numeric(district_df[p], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                target = np.log1p(proxy)
            ok = np.isfinite(score) & np.isfinite(target)
            n = int(ok.sum())
            r2 = slope = pval = np.nan
            if n >= 3 and np.ptp(score[ok]) > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # perfect fit: 0/0 in p
                    res = sm.OLS(target[ok], sm.add_constant(score[ok], has_constant="add")).fit()
                r2, slope, pval = float(res.rsquared), float(res.params[1]), float(res.pvalues[1])
            rows.append({"model": s, "proxy": p, "n": n, "r2": r2, "slope": slope,
                         "p_value": pval})
    out = pd.DataFrame(rows, columns=DISTRICT_COLUMNS)
    out.attrs.update(proxy_transform=PROXY_TRANSFORM)
    return out
