"""Change and its uncertainty: how a tile's score moved between two years, whether that is more
than the noise, and how well score changes follow true changes where the truth is known.

The noise of a year pair's delta is measured on the pair itself: most places change little in a
year, so the robust spread of the deltas (1.4826 x their median absolute deviation around the
median, over the tiles inhabited in either year) bounds what the scorer does to a place whose
imagery changed only with the year's light, season and sensor.  A tile's interval is its delta
plus or minus ``z`` of that spread (:func:`flag_changes` can widen it by a per-tile spread, e.g.
the seeds'; no table stores one yet, so no caller does); ``significant`` marks a delta whose
interval excludes zero.  Where the spread cannot be measured (most deltas exactly equal), no
delta is flagged and the figures that count flags are NaN.  The noise floor
errs on the large side where many places really change (their change counts as noise), so a
flag means more than the pair's typical movement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

#: Two-sided 95 % normal quantile: a delta beyond z x its noise is flagged.
CHANGE_Z = 1.96
#: Share of the largest true changes the sign accuracy is measured on (the top decile).
TOP_SHARE = 0.1
#: The figures the first -> last pair reports in metadata.
HEADLINE = ("rho_changed", "sign_top", "false_change")
#: Fewer tiles than this: a figure is NaN, not a number from a handful of points.
MIN_TILES = 5


def year_pairs(years: Sequence[int]) -> list[tuple[int, int]]:
    """Every consecutive pair of configured years, then first -> last when that is another pair."""
    ys = sorted(int(y) for y in years)
    pairs = list(zip(ys[:-1], ys[1:], strict=True))
    if len(ys) > 2:
        pairs.append((ys[0], ys[-1]))
    return pairs


def noise_floor(delta: np.ndarray, inhabited: np.ndarray | None = None) -> float:
    """Robust sd of a pair's deltas (1.4826 MAD around the median) over ``inhabited`` tiles.
    NaN (not measurable) where more than half the deltas tie at the median but not all do
    (quantised values: night lights, a score file rounded to two decimals): a MAD of 0 would
    flag every delta that moved at all."""
    d = np.asarray(delta, dtype=float)
    if inhabited is not None:
        d = d[np.asarray(inhabited, dtype=bool)]
    d = d[np.isfinite(d)]
    if len(d) < MIN_TILES:
        return float("nan")
    centre = np.median(d)
    mad = float(np.median(np.abs(d - centre)))
    if mad == 0.0 and (d != centre).any():
        return float("nan")
    return 1.4826 * mad


def flag_changes(
    delta: np.ndarray,
    inhabited: np.ndarray,
    spread: np.ndarray | None = None,
    z: float = CHANGE_Z,
) -> pd.DataFrame:
    """Per tile: ``noise_sd`` (the pair's floor, combined with the seeds' ``spread`` of the two
    years' scores when given: sqrt(floor^2 + spread^2)), ``delta_lo`` / ``delta_hi`` (delta -/+ z
    noise_sd) and ``significant`` (inhabited in either year and the interval excludes zero)."""
    d = np.asarray(delta, dtype=float)
    inh = np.asarray(inhabited, dtype=bool)
    floor = noise_floor(d, inh)
    sd = np.full(len(d), floor)
    if spread is not None:
        sd = np.sqrt(sd**2 + np.nan_to_num(np.asarray(spread, dtype=float)) ** 2)
    half = z * sd
    return pd.DataFrame(
        {
            "noise_sd": sd,
            "delta_lo": d - half,
            "delta_hi": d + half,
            "significant": inh & np.isfinite(d) & np.isfinite(half) & (np.abs(d) > half),
        }
    )


def change_figures(
    delta_score: np.ndarray,
    delta_truth: np.ndarray,
    significant: np.ndarray | None = None,
    *,
    still: float = 0.0,
    top_share: float = TOP_SHARE,
    truth_from: np.ndarray | None = None,
    level: np.ndarray | None = None,
) -> dict[str, float]:
    """How score changes follow true changes over the tiles given (e.g. those inhabited).

    ``rho_changed``: Spearman of the deltas over tiles whose truth moved by more than ``still``;
    ``sign_top``: share of the ``top_share`` largest true changes (by size) whose score moved the
    same way; ``false_change``: share of the tiles whose truth stood still that are flagged
    ``significant``; ``flagged_changed``: share of the changed tiles flagged.

    With the first year's (non-negative) truth ``truth_from``, two figures that do not depend on
    the score's scale: a rank-trained score is any monotone function of development, and SYN's
    siScore is close to linear in log floor area, so its delta is a *relative* change.
    ``rho_changed_log``: Spearman of the deltas against the change of log(1 + truth);
    ``rho_log_ceiling``: Spearman of that log change against the truth's own change -- what
    ``rho_changed`` would be for a score exactly linear in log(1 + truth), with no noise.

    With the pair's earlier score ``level`` (the model's own), ``rho_given_level``: the partial
    Spearman of the deltas and the true changes given that level (ranks, each residualised on
    the level's rank by least squares).  Where bigger places grow more, the level alone ranks
    the changes well, and a delta scaled by the level (a score in people) gains
    ``rho_changed`` without telling more about *which* places changed; this figure counts only
    what the delta adds."""
    ds = np.asarray(delta_score, dtype=float)
    dt = np.asarray(delta_truth, dtype=float)
    t0 = np.full(ds.shape, np.nan) if truth_from is None else np.asarray(truth_from, dtype=float)
    ok = np.isfinite(ds) & np.isfinite(dt)
    lv = np.full(ds.shape, np.nan) if level is None else np.asarray(level, dtype=float)
    ds, dt, t0, lv = ds[ok], dt[ok], t0[ok], lv[ok]
    sig = None if significant is None else np.asarray(significant, dtype=bool)[ok]
    changed = np.abs(dt) > still
    out = {
        "tiles": float(len(ds)),
        "tiles_changed": float(changed.sum()),
        "tiles_still": float((~changed).sum()),
        "rho_changed": float("nan"),
        "sign_top": float("nan"),
        "false_change": float("nan"),
        "flagged_changed": float("nan"),
    }
    if truth_from is not None:
        out["rho_changed_log"] = out["rho_log_ceiling"] = float("nan")
    if level is not None:
        out["rho_given_level"] = float("nan")
    if changed.sum() >= MIN_TILES:
        out["rho_changed"] = float(spearmanr(ds[changed], dt[changed]).statistic)
        if level is not None and np.isfinite(lv[changed]).all():
            out["rho_given_level"] = partial_spearman(ds[changed], dt[changed], lv[changed])
        a, b = t0[changed], t0[changed] + dt[changed]
        if truth_from is not None and np.isfinite(a).all() and (a >= 0).all() and (b >= 0).all():
            dlog = np.log1p(b) - np.log1p(a)
            out["rho_changed_log"] = float(spearmanr(ds[changed], dlog).statistic)
            out["rho_log_ceiling"] = float(spearmanr(dlog, dt[changed]).statistic)
        size = np.abs(dt[changed])
        top = size >= np.quantile(size, 1.0 - top_share)
        agree = np.sign(ds[changed][top]) == np.sign(dt[changed][top])
        out["sign_top"] = float(agree.mean())
        if sig is not None:
            out["flagged_changed"] = float(sig[changed].mean())
    if sig is not None and (~changed).sum() >= MIN_TILES:
        out["false_change"] = float(sig[~changed].mean())
    return out


def partial_spearman(a: np.ndarray, b: np.ndarray, given: np.ndarray) -> float:
    """Spearman correlation of ``a`` and ``b`` with ``given`` partialled out: the Pearson
    correlation of their ranks' residuals on the rank of ``given`` (scipy has no partial rank
    correlation; two least-squares lines do it)."""
    ra, rb, rg = (rankdata(v) for v in (a, b, given))
    design = np.column_stack([np.ones_like(rg), rg])
    res_a = ra - design @ np.linalg.lstsq(design, ra, rcond=None)[0]
    res_b = rb - design @ np.linalg.lstsq(design, rb, rcond=None)[0]
    den = float(np.sqrt((res_a**2).sum() * (res_b**2).sum()))
    return float((res_a * res_b).sum() / den) if den > 0 else float("nan")


def pair_delta(
    wide: pd.DataFrame, a: int, b: int, inhabited: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Tiles scored in both years of a (tiles x years) frame: ``delta`` = b - a, ``inhabited``
    (either year, from the same-shaped ``inhabited`` frame; all True without one)."""
    both = wide[[a, b]].dropna()
    out = pd.DataFrame({"delta": both[b] - both[a]}, index=both.index)
    if inhabited is None:
        out["inhabited"] = True
    else:
        hab = inhabited.reindex(both.index)[[a, b]].fillna(False).astype(bool)
        out["inhabited"] = hab[a] | hab[b]
    return out


def validation_change(
    country: str,
    scores: dict[str, pd.DataFrame],
    truth: pd.DataFrame,
    inhabited: pd.DataFrame,
    truth_name: str,
    flags_of: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The `validation_change` rows: per model (``scores``: tiles x years frames) and year pair,
    :func:`change_figures` of its deltas against the truth's (``truth``: tiles x years), over the
    tiles the truth calls inhabited in either year, significance by :func:`flag_changes` on the
    model's own deltas, or on another model's where ``flags_of`` says so (the same scores on
    another scale: flagged as the score is)."""
    rows = []
    for model, wide in scores.items():
        flagged_by = scores[(flags_of or {}).get(model, model)]
        for a, b in year_pairs(list(wide.columns)):
            if a not in truth or b not in truth:
                continue
            pd_ = pair_delta(wide, a, b)
            t = truth.reindex(pd_.index)
            inh = inhabited.reindex(pd_.index)[[a, b]].fillna(False).astype(bool).any(axis=1)
            keep = (inh & t[a].notna() & t[b].notna()).to_numpy()
            own = pair_delta(flagged_by, a, b)["delta"].reindex(pd_.index).to_numpy()
            flags = flag_changes(own[keep], np.ones(keep.sum(), bool))
            measurable = len(flags) and np.isfinite(flags["noise_sd"]).all()
            figs = change_figures(
                pd_["delta"].to_numpy()[keep],
                (t[b] - t[a]).to_numpy()[keep],
                flags["significant"].to_numpy() if measurable else None,  # no floor: no flags
                truth_from=t[a].to_numpy()[keep],
                level=wide[a].reindex(pd_.index).to_numpy(dtype=float)[keep],
            )
            if model not in (flags_of or {}):  # a borrowed floor is in the other model's unit
                figs["noise_sd"] = float(flags["noise_sd"].iloc[0]) if len(flags) else np.nan
            rows.extend(
                {
                    "country": country,
                    "model": model,
                    "year_from": a,
                    "year_to": b,
                    "truth": truth_name,
                    "figure": k,
                    "value": float(v),
                }
                for k, v in figs.items()
            )
    return pd.DataFrame(
        rows, columns=["country", "model", "year_from", "year_to", "truth", "figure", "value"]
    )


def change_summary(wide: pd.DataFrame, inhabited: pd.DataFrame | None = None) -> pd.DataFrame:
    """Where no truth exists: per year pair, the scores' year-to-year agreement (Spearman), the
    delta's distribution (5th / 50th / 95th percentile), the noise floor and the shares of the
    tiles inhabited in either year flagged as significantly up / down (:func:`flag_changes`)."""
    rows = []
    for a, b in year_pairs(list(wide.columns)):
        pdl = pair_delta(wide, a, b, inhabited)
        both = wide.loc[pdl.index]
        inh = pdl["inhabited"].to_numpy()
        d = pdl["delta"].to_numpy()
        flags = flag_changes(d, inh)
        sig = flags["significant"].to_numpy()
        di = d[inh]
        q = np.percentile(di, [5, 50, 95]) if len(di) else [np.nan] * 3
        n = max(int(inh.sum()), 1) if np.isfinite(flags["noise_sd"]).all() else np.nan
        rows.append(
            {
                "year_from": a,
                "year_to": b,
                "tiles": int(inh.sum()),
                "year_rho": float(spearmanr(both[a], both[b]).statistic)
                if len(both) >= MIN_TILES
                else float("nan"),
                "delta_p05": float(q[0]),
                "delta_median": float(q[1]),
                "delta_p95": float(q[2]),
                "noise_sd": float(flags["noise_sd"].iloc[0]) if len(flags) else float("nan"),
                "flagged_up": float((sig & (d > 0)).sum() / n),
                "flagged_down": float((sig & (d < 0)).sum() / n),
            }
        )
    return pd.DataFrame(rows)
