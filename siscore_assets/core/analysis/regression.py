"""OLS with cluster-robust standard errors, for regressions of siScore change on regional features.

Tiles in the same district (or village, or province) share unobserved shocks, so their errors
are correlated; ordinary OLS standard errors would then be far too small.  We therefore always
cluster.  Inference uses Student-t with ``G - 1`` degrees of freedom (G = number of clusters)
and statsmodels' small-sample correction, the usual choice (Stata's ``vce(cluster)``) when G is
modest, as it is with districts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Offset used by :func:`delta_log` by default.  siScore lives in [0, 1]; adding 0.01 keeps
#: ``log((cur + eps) / (prev + eps))`` finite at 0 and bounds it by ``±log(101) ≈ ±4.6``,
#: while leaving changes between scores well above 0.01 almost unaffected.
DEFAULT_EPS = 0.01
#: Offset for night-light radiance (0-63 for DMSP, larger for VIIRS): the log(1 + light) change
#: usual in the literature.  The scores' 0.01 would make a tile going from dark to any light
#: worth 4.6-8.6 log points, so a regression of the change would measure lights switching on
#: (found by review: 6.6 against 0.44 for tiles already lit, on SYN).
NIGHTLIGHT_EPS = 1.0

#: A 0/1 term set (or unset) in fewer clusters than this has no trustworthy cluster-robust
#: standard error: with one "treated" cluster its SE is near 0 and a null effect is called
#: significant most of the time (55 % at the 5 % level in a 12-district simulation; MacKinnon &
#: Webb 2017, "Wild bootstrap inference for wildly different cluster sizes").  Its coefficient
#: is kept; its se, t, p and interval are left empty.
MIN_CLUSTERS_EACH_SIDE = 5

COEF_COLUMNS = [
    "term",
    "coef",
    "se",
    "t",
    "p",
    "ci_low",
    "ci_high",
    "n",
    "r2",
    "n_clusters",
    "term_clusters",
    "outcome",
]


def term_clusters(x: pd.Series, groups: np.ndarray, n_clusters: int) -> int:
    """The clusters a term's estimate rests on.  A term of two values (a 0/1 dummy, a district
    control over two districts): the fewer of the clusters holding each value.  A term at one
    value on most rows: the clusters where it departs from that value (a control that only one
    tile's district changes is a one-tile dummy).  Every cluster otherwise (the constant too)."""
    values = x.to_numpy(dtype=float)
    levels, counts = np.unique(values, return_counts=True)
    if len(levels) < 2:
        return n_clusters
    if len(levels) == 2:
        return min(len(np.unique(groups[values == v])) for v in levels)
    if 2 * counts.max() > len(values):
        return len(np.unique(groups[values != levels[counts.argmax()]]))
    return n_clusters


def delta_log(
    cur: np.ndarray | pd.Series, prev: np.ndarray | pd.Series, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """Log-ratio ``log((cur + eps) / (prev + eps))``: a relative change that tolerates zeros."""
    if eps < 0:
        raise ValueError("eps must be >= 0")
    c = np.asarray(cur, dtype=float)
    p = np.asarray(prev, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(c + eps) - np.log(p + eps)


def _design(d: pd.DataFrame, regressors: Sequence[str], fixed_effects: str | None) -> pd.DataFrame:
    import statsmodels.api as sm

    cols = {}
    for r in regressors:
        s = d[r]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(float)
        elif not pd.api.types.is_numeric_dtype(s):
            raise TypeError(f"regressor {r!r} is not numeric or boolean (dtype {s.dtype})")
        cols[r] = s.astype(float)
    X = pd.DataFrame(cols, index=d.index)
    if fixed_effects is not None:
        fe = pd.get_dummies(
            d[fixed_effects], prefix=fixed_effects, prefix_sep="=", drop_first=True, dtype=float
        )
        X = pd.concat([X, fe], axis=1)
    return sm.add_constant(X, has_constant="add")


def ols_clustered(
    df: pd.DataFrame,
    outcome: str,
    regressors: list[str],
    cluster_col: str,
    *,
    fixed_effects: str | None = None,
    alpha: float = 0.05,
    include_fe_terms: bool = False,
) -> pd.DataFrame:
    """Fit ``outcome ~ const + regressors [+ FE dummies]`` with SEs clustered on ``cluster_col``.

    Rows with a missing or non-finite value in any used column are dropped (``n`` reports what
    was used; ``attrs['n_dropped']`` what was not).  Booleans become 0/1.  Fixed effects are
    dummies of ``fixed_effects`` (first level dropped); their terms are left out of the table
    unless ``include_fe_terms``.  A term resting on fewer than :data:`MIN_CLUSTERS_EACH_SIDE`
    clusters (:func:`term_clusters`: a 0/1 term's smaller side, a mostly constant term's
    departures) keeps its coefficient without inference.  Returns
    one row per term with :data:`COEF_COLUMNS`.
    """
    import statsmodels.api as sm  # slow import; kept out of rasters' path to delta_log

    used = list(
        dict.fromkeys(
            [outcome, *regressors, cluster_col] + ([fixed_effects] if fixed_effects else [])
        )
    )
    missing = [c for c in used if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in frame: {missing}")
    d = df[used].replace([np.inf, -np.inf], np.nan).dropna()
    n_dropped = len(df) - len(d)
    y = d[outcome].astype(float)
    X = _design(d, regressors, fixed_effects)
    groups, uniques = pd.factorize(d[cluster_col], sort=True)
    n, g = len(d), len(uniques)
    if g < 2:
        raise ValueError(f"need at least 2 clusters of {cluster_col!r}, got {g}")
    if n <= X.shape[1]:
        raise ValueError(f"{n} usable rows for {X.shape[1]} parameters")

    res = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    ci = res.conf_int(alpha=alpha)
    table = pd.DataFrame(
        {
            "term": list(X.columns),
            "coef": res.params.to_numpy(),
            "se": res.bse.to_numpy(),
            "t": res.tvalues.to_numpy(),
            "p": res.pvalues.to_numpy(),
            "ci_low": ci.iloc[:, 0].to_numpy(),
            "ci_high": ci.iloc[:, 1].to_numpy(),
        }
    )
    table["term_clusters"] = [term_clusters(X[t], groups, g) for t in X.columns]
    few = table["term_clusters"] < MIN_CLUSTERS_EACH_SIDE
    table.loc[few, ["se", "t", "p", "ci_low", "ci_high"]] = np.nan
    if fixed_effects is not None and not include_fe_terms:
        table = table[~table["term"].str.startswith(f"{fixed_effects}=")].reset_index(drop=True)
    table["n"] = n
    table["r2"] = float(res.rsquared)
    table["n_clusters"] = g
    table["outcome"] = outcome
    table.attrs.update(
        n_dropped=int(n_dropped), fixed_effects=fixed_effects, cluster_col=cluster_col, alpha=alpha
    )
    return table[COEF_COLUMNS]


def _fmt(v: object, digits: int) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        a = abs(float(v))
        if a != 0 and (a < 10**-digits or a >= 1e6):
            return f"{float(v):.{digits}g}"
        return f"{float(v):.{digits}f}"
    return str(v)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """Readable Markdown for Dagster metadata: a coefficient table from :func:`ols_clustered`
    gets stars and a summary line; any other frame is rendered column by column."""
    if {"term", "coef", "se", "p"}.issubset(table.columns):
        rows = []
        for r in table.itertuples(index=False):
            p = float(r.p)
            stars = "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""
            ci = (
                f"[{_fmt(r.ci_low, digits)}, {_fmt(r.ci_high, digits)}]"
                if "ci_low" in table.columns
                else ""
            )
            rows.append(
                [
                    str(r.term),
                    _fmt(r.coef, digits) + stars,
                    _fmt(r.se, digits),
                    _fmt(getattr(r, "t", np.nan), 2),
                    _fmt(p, digits),
                    ci,
                ]
            )
        out = _md_table(["term", "coef", "se (cluster)", "t", "p", "95% CI"], rows)
        if len(table) and {"n", "r2", "n_clusters", "outcome"}.issubset(table.columns):
            first = table.iloc[0]
            out += (
                f"\n\noutcome `{first['outcome']}`; n = {int(first['n'])}; "
                f"clusters = {int(first['n_clusters'])}; R² = {_fmt(first['r2'], digits)}; "
                "* p<0.1, ** p<0.05, *** p<0.01"
            )
        return out
    header = [str(c) for c in table.columns]
    rows = [[_fmt(v, digits) for v in rec] for rec in table.itertuples(index=False)]
    return _md_table(header, rows)


#: The paper's Table 1 columns: (model label, outcome column, what it measures).
TABLE1_MODELS = (
    ("(1)", "delta_log_siscore", "Δlog siScore"),
    ("(2)", "delta_log_nightlight", "Δlog nightlight"),
    ("(3)", "siscore_up", "1{ΔsiScore>0} (LPM)"),
    ("(4)", "nightlight_up", "1{Δnightlight>0} (LPM)"),
)


def table1_markdown(table: pd.DataFrame, digits: int = 3, cluster: str = "district") -> str:
    """The coefficient table as the paper prints Table 1: one row per term, one column per
    model, ``coef`` with stars and the clustered SE in parentheses; n, clusters and R² below."""
    labels = {m: f"{m} {title}" for m, _, title in TABLE1_MODELS}
    models = list(dict.fromkeys(table["model"]))
    terms = list(dict.fromkeys(table["term"]))
    rows = []
    for term in terms:
        cells = [str(term)]
        for m in models:
            r = table[(table["model"] == m) & (table["term"] == term)]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            p = float(r["p"])
            stars = "***" if p < 0.01 else "**" if p < 0.05 else "*" if p < 0.1 else ""
            cells.append(f"{_fmt(r['coef'], digits)}{stars} ({_fmt(r['se'], digits)})")
        rows.append(cells)
    for stat, fmt in (("n", "{:d}"), ("n_clusters", "{:d}"), ("r2", None)):
        cells = [{"n": "N", "n_clusters": f"clusters ({cluster})", "r2": "R²"}[stat]]
        for m in models:
            v = table.loc[table["model"] == m, stat].iloc[0]
            cells.append(fmt.format(int(v)) if fmt else _fmt(v, digits))
        rows.append(cells)
    out = _md_table(["term", *[labels.get(m, m) for m in models]], rows)
    return out + f"\n\nSE clustered by {cluster} in parentheses; * p<0.1, ** p<0.05, *** p<0.01"
