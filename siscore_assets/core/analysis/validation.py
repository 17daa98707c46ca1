"""Validation of siScore (and baselines) against external proxies of development.

* Grid level: Spearman rank correlation per (model score, proxy) over tiles, with a bootstrap
  percentile confidence interval.  Ranks, because siScore is only meant to *order* places.
* District level: OLS ``log(proxy + 1) ~ const + score`` per pair, reporting R².  We always use
  ``log1p`` of the proxy: building area, population and nightlights are non-negative and
  heavily right-skewed, and the log makes R² about relative, not absolute, differences.
  Rows where ``log1p(proxy)`` is not finite (proxy <= -1, NaN) are dropped.  The R² CI
  resamples districts (for one regressor with an intercept, R² is the squared Pearson r).  A
  survey's value is the exception (``untransformed``): nothing defines it as non-negative.

Every tile a pair does not use is counted under one reason (:data:`DROP_REASONS`), so ``n`` plus
the dropped counts is always the number of tiles in the frame: nothing is lost silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

#: Why a tile is not used for a (score, proxy) pair, checked in this order: the model has no
#: score (because the tile was cloudy / blank or corrupt / for no known reason), the tile has no
#: proxy value, or it falls outside the subset (uninhabited, when only inhabited tiles count).
DROP_REASONS = ("cloudy", "unusable", "no_score", "no_proxy", "uninhabited")
DROP_COLUMNS = [f"dropped_{r}" for r in DROP_REASONS]
GRID_COLUMNS = [
    "model",
    "proxy",
    "n",
    "n_dropped",
    *DROP_COLUMNS,
    "spearman_rho",
    "p_value",
    "ci_low",
    "ci_high",
    "boot_m",
]
DISTRICT_COLUMNS = [
    "model",
    "proxy",
    "n",
    "n_dropped",
    "r2",
    "ci_low",
    "ci_high",
    "slope",
    "p_value",
]
DEFAULT_BOOT = 1000
#: Transform applied to proxies in :func:`district_validation`.
PROXY_TRANSFORM = "log1p"
_BOOT_CELLS = 4_000_000  # resample-matrix cells per chunk (~32 MB of float64)
#: Above this many tiles a pair's CI comes from an m-out-of-n bootstrap with m = BOOT_MAX_M
#: (resamples of m tiles, spread rescaled by sqrt(m / n)): its cost no longer grows with the
#: country.  The table's ``boot_m`` column says which resample size each row used.
BOOT_MAX_M = 10_000


def _tie_groups(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start of each run of equal values in it, and each point's run index."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    new = np.r_[True, sv[1:] != sv[:-1]]
    starts = np.flatnonzero(new)
    group_sorted = np.cumsum(new) - 1
    group = np.empty(len(v), dtype=np.int64)
    group[order] = group_sorted
    return order, starts, group


def _resample_ranks(
    counts: np.ndarray, order: np.ndarray, starts: np.ndarray, group: np.ndarray
) -> np.ndarray:
    """Average ranks (as ``rankdata`` gives them inside each resample) of every original point,
    from the resample's draw counts: a point's rank is the number of draws below its value plus
    the mean position inside its run of equal values."""
    gsum = counts[:, order]
    if len(starts) < len(order):  # ties: sum the draws of each run of equal values
        gsum = np.add.reduceat(gsum, starts, axis=1)
    grank = np.cumsum(gsum, axis=1) - gsum + (gsum + 1) / 2.0
    return grank[:, group]


def bootstrap_spearman(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> np.ndarray:
    """Spearman rho of ``n_boot`` paired resamples (with replacement), vectorised.

    Each resample is re-ranked (average ranks, so duplicates drawn twice tie, as in
    ``spearmanr``) and rho is the Pearson correlation of the ranks.  A resample is held as draw
    counts per original point, so ranks come from cumulative sums over the once-sorted data
    instead of a sort per resample (≈ 20x faster than ``rankdata`` on the resample matrix; no
    library does weighted average ranks).  Resamples with a constant column give NaN.
    """
    n = len(x)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // max(n, 1))
    gx, gy = _tie_groups(np.asarray(x, dtype=float)), _tie_groups(np.asarray(y, dtype=float))
    mid = (n + 1) / 2.0  # every resample has n draws, so its mean rank is (n + 1) / 2
    for s in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - s), n))
        b = len(idx)
        counts = (
            np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n)
            .reshape(b, n)
            .astype(float)
        )
        rx = _resample_ranks(counts, *gx) - mid
        ry = _resample_ranks(counts, *gy) - mid
        num = (counts * rx * ry).sum(axis=1)
        den = np.sqrt((counts * rx * rx).sum(axis=1) * (counts * ry * ry).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + b] = np.where(den > 1e-9 * n**3, num / den, np.nan)
    return out


def m_out_of_n_spearman(
    x: np.ndarray, y: np.ndarray, m: int, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> np.ndarray:
    """Spearman rho of ``n_boot`` paired resamples of ``m`` of the ``n`` points (with
    replacement): each resample is ranked on its own, so the cost is n_boot x m log m."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // max(m, 1))
    for s in range(0, n_boot, step):
        idx = rng.integers(0, len(x), size=(min(step, n_boot - s), m))
        rx = stats.rankdata(x[idx], axis=1) - (m + 1) / 2.0
        ry = stats.rankdata(y[idx], axis=1) - (m + 1) / 2.0
        den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + len(idx)] = np.where(den > 0, (rx * ry).sum(axis=1) / den, np.nan)
    return out


def spearman_ci(
    x: np.ndarray,
    y: np.ndarray,
    rho: float,
    *,
    n_boot: int,
    seed: int,
    alpha: float,
    max_m: int = BOOT_MAX_M,
) -> tuple[float, float, int]:
    """(low, high, resample size) of the bootstrap percentile CI of Spearman rho: n-out-of-n up
    to ``max_m`` points, else m-out-of-n with the spread around rho scaled by sqrt(m / n)."""
    n = len(x)
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    if n <= max_m:
        boots = bootstrap_spearman(x, y, n_boot=n_boot, seed=seed)
        if not np.isfinite(boots).any():
            return np.nan, np.nan, n
        lo, hi = np.nanpercentile(boots, q)
        return float(lo), float(hi), n
    boots = m_out_of_n_spearman(x, y, max_m, n_boot=n_boot, seed=seed)
    if not np.isfinite(boots).any():
        return np.nan, np.nan, max_m
    lo, hi = rho + np.sqrt(max_m / n) * (np.nanpercentile(boots, q) - rho)
    return float(lo), float(hi), max_m


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)


def drop_counts(
    df: pd.DataFrame,
    score_col: str,
    proxy_col: str,
    *,
    status_col: str | None = "status",
    keep_col: str | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """The rows a (score, proxy) pair uses, and how many of the others are dropped per reason.

    ``status_col`` (if present) is the tile's imagery status ('ok', 'cloudy', 'blank',
    'corrupt', or missing); ``keep_col`` (if given) marks the subset (e.g. ``inhabited``):
    rows where it is not True are dropped as 'uninhabited'.
    """
    score_ok = np.isfinite(_numeric(df, score_col))
    proxy_ok = np.isfinite(_numeric(df, proxy_col))
    status = (
        df[status_col].astype("string").fillna("")
        if status_col and status_col in df.columns
        else pd.Series("", index=df.index, dtype="string")
    ).to_numpy()
    keep = (
        df[keep_col].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if keep_col
        else np.ones(len(df), dtype=bool)
    )
    no_score = ~score_ok
    counts = {
        "cloudy": int((no_score & (status == "cloudy")).sum()),
        "unusable": int((no_score & np.isin(status, ["blank", "corrupt"])).sum()),
    }
    counts["no_score"] = int(no_score.sum()) - counts["cloudy"] - counts["unusable"]
    counts["no_proxy"] = int((score_ok & ~proxy_ok).sum())
    counts["uninhabited"] = int((score_ok & proxy_ok & ~keep).sum())
    return score_ok & proxy_ok & keep, counts


def grid_validation(
    df: pd.DataFrame,
    score_cols: list[str],
    proxy_cols: list[str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
    status_col: str | None = "status",
    keep_col: str | None = None,
    skip_pairs: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Tile-level Spearman rho for every (score, proxy) pair, with a bootstrap CI.

    Each pair uses every row where both values are finite (and ``keep_col`` is True, if
    given); every other row is counted under one reason of :func:`drop_counts`, so
    ``n + n_dropped == len(df)``.  The CI is the percentile interval of
    :func:`bootstrap_spearman` (``1 - alpha``), m-out-of-n above ``BOOT_MAX_M`` tiles
    (:func:`spearman_ci`; ``boot_m`` says the resample size, 0 without a CI); every pair is
    resampled with the same ``seed``, so results don't depend on column order.  Pairs with
    fewer than 3 rows, or a constant column, get NaN statistics.  ``skip_pairs`` are left out
    (a baseline built from a proxy is not validated against that proxy).
    """
    rows = []
    skip = set(skip_pairs)
    for s in score_cols:
        for p in proxy_cols:
            if (s, p) in skip:
                continue
            used, counts = drop_counts(df, s, p, status_col=status_col, keep_col=keep_col)
            x, y = _numeric(df, s)[used], _numeric(df, p)[used]
            n = len(x)
            rho = pval = lo = hi = np.nan
            m = 0
            if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
                res = stats.spearmanr(x, y)
                rho, pval = float(res.statistic), float(res.pvalue)
                if n_boot > 0:
                    lo, hi, m = spearman_ci(x, y, rho, n_boot=n_boot, seed=seed, alpha=alpha)
            rows.append(
                {
                    "model": s,
                    "proxy": p,
                    "n": n,
                    "n_dropped": len(df) - n,
                    **{f"dropped_{k}": v for k, v in counts.items()},
                    "spearman_rho": rho,
                    "p_value": pval,
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "boot_m": int(m),
                }
            )
    out = pd.DataFrame(rows, columns=GRID_COLUMNS)
    out.attrs.update(n_boot=n_boot, seed=seed, alpha=alpha)
    return out


def bootstrap_r2(
    x: np.ndarray, y: np.ndarray, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> np.ndarray:
    """R² of ``y ~ const + x`` on ``n_boot`` paired resamples: the squared Pearson r, vectorised."""
    n = len(x)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // max(n, 1))
    for s in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - s), n))
        bx, by = x[idx], y[idx]
        bx = bx - bx.mean(axis=1, keepdims=True)
        by = by - by.mean(axis=1, keepdims=True)
        sxx, syy = (bx * bx).sum(axis=1), (by * by).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s : s + len(idx)] = np.where(
                (sxx > 0) & (syy > 0), (bx * by).sum(axis=1) ** 2 / (sxx * syy), np.nan
            )
    return out


def district_validation(
    district_df: pd.DataFrame,
    score_cols: Sequence[str],
    proxy_cols: Sequence[str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
    skip_pairs: Sequence[tuple[str, str]] = (),
    untransformed: Sequence[str] = (),
) -> pd.DataFrame:
    """District-level OLS ``log1p(proxy) ~ const + score`` for every pair: n, R² with a
    bootstrap CI (districts resampled, seeded), slope, p.

    Rows where the score or ``log1p(proxy)`` is not finite are dropped (``n_dropped``).  Pairs
    with fewer than 3 rows or a constant score get NaN statistics.  ``untransformed``: proxies
    regressed as they are, because nothing defines them as non-negative (a survey's wealth index
    is a signed score: log1p would drop its poorest districts and bend the rest).
    """
    rows = []
    skip = set(skip_pairs)
    plain = set(untransformed)
    for s in score_cols:
        for p in proxy_cols:
            if (s, p) in skip:
                continue
            score = pd.to_numeric(district_df[s], errors="coerce").to_numpy(dtype=float)
            proxy = pd.to_numeric(district_df[p], errors="coerce").to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                target = proxy if p in plain else np.log1p(proxy)
            ok = np.isfinite(score) & np.isfinite(target)
            n = int(ok.sum())
            r2 = slope = pval = lo = hi = np.nan
            if n >= 3 and np.ptp(score[ok]) > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # perfect fit: 0/0 in p
                    res = sm.OLS(target[ok], sm.add_constant(score[ok], has_constant="add")).fit()
                r2, slope, pval = float(res.rsquared), float(res.params[1]), float(res.pvalues[1])
                if n_boot > 0:
                    boots = bootstrap_r2(score[ok], target[ok], n_boot=n_boot, seed=seed)
                    if np.isfinite(boots).any():
                        lo, hi = np.nanpercentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)])
            rows.append(
                {
                    "model": s,
                    "proxy": p,
                    "n": n,
                    "n_dropped": len(district_df) - n,
                    "r2": r2,
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "slope": slope,
                    "p_value": pval,
                }
            )
    out = pd.DataFrame(rows, columns=DISTRICT_COLUMNS)
    out.attrs.update(proxy_transform=PROXY_TRANSFORM, n_boot=n_boot, seed=seed, alpha=alpha)
    if plain:
        out.attrs["untransformed"] = sorted(plain)
    return out


# --- Internal validation: figures that need no external proxy ---------------------------------
#: Soft development index of a labelled image: urban 2, rural 1, uninhabited 0 (label shares).
DEV_INDEX_WEIGHTS = (2.0, 1.0, 0.0)


def development_index(soft_labels: np.ndarray) -> np.ndarray:
    """Urban 2 / rural 1 / uninhabited 0, weighted by the annotators' label shares."""
    return np.asarray(soft_labels, dtype=float) @ np.asarray(DEV_INDEX_WEIGHTS)


def label_agreement(scores: np.ndarray, soft_labels: np.ndarray) -> dict[str, float]:
    """Held-out human labels: Spearman of score vs the soft development index, and the AUC of
    urban-majority vs rural-majority images (Mann-Whitney; 0.5 = no separation)."""
    s = np.asarray(scores, dtype=float)
    lab = np.asarray(soft_labels, dtype=float)
    dev = development_index(lab)
    rho = float(stats.spearmanr(s, dev).statistic) if len(s) > 2 else float("nan")
    major = lab.argmax(axis=1)
    u, r = s[major == 0], s[major == 1]
    auc = (
        float(stats.mannwhitneyu(u, r).statistic / (len(u) * len(r)))
        if len(u) and len(r)
        else float("nan")
    )
    return {"label_spearman": rho, "urban_rural_auc": auc, "label_images": int(len(s))}


def year_agreement(scores: pd.DataFrame) -> dict[str, float]:
    """Scores of the same tiles (rows) in each year (columns, sorted): Spearman of consecutive
    years, the year-to-year noise (robust sd of all consecutive differences: 1.4826 x MAD) and
    how many tiles change first -> last year by more than twice that noise."""
    years = sorted(scores.columns)
    out: dict[str, float] = {}
    diffs = []
    for a, b in zip(years, years[1:]):
        pair = scores[[a, b]].dropna()
        out[f"year_rho_{a}_{b}"] = (
            float(stats.spearmanr(pair[a], pair[b]).statistic) if len(pair) > 2 else float("nan")
        )
        diffs.append((pair[b] - pair[a]).to_numpy())
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) if len(d) else float("nan")
    change = (
        (scores[years[-1]] - scores[years[0]]).dropna()
        if len(years) > 1
        else pd.Series(dtype=float)
    )
    rhos = [v for k, v in out.items() if k.startswith("year_rho_")]
    out.update(
        {
            "year_rho_min": float(np.nanmin(rhos)) if rhos else float("nan"),
            "year_noise_sd": noise,
            "tiles_changed": int((change.abs() > 2 * noise).sum()),
            "tiles_compared": int(len(change)),
        }
    )
    return out


def seed_spread(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean and sd (ddof 1) over seeds of every numeric figure the rows share."""
    frame = pd.DataFrame(list(rows)).select_dtypes("number")
    out = {}
    for col in frame.columns:
        out[f"{col}_mean"] = float(frame[col].mean())
        out[f"{col}_sd"] = float(frame[col].std(ddof=1)) if len(frame) > 1 else 0.0
    return out
