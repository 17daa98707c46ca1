"""Data-guided POG baselines (the paper's NL-guided and land-cover-guided POGs).

Instead of people, a proxy ranks the Stage-1 clusters: the clusters' average proxy value
(nightlight radiance, built-up share from land cover) orders them, equal averages tie, and the
uninhabited cluster sits below everything.  As a *baseline score* a tile gets the normalised tier
of its cluster in that POG: 0 for the bottom tier, 1 for the top, evenly spaced between.  This
shows what ranking clusters with existing data, without a trained scorer, already achieves.

A guided POG written elsewhere (e.g. a stage-2 asset, as a line ``3=4>1>0``) can be used instead
of the one derived here; :func:`tiers_from_line` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from siscore_assets.core import pog as pogs

#: Baseline model name -> the proxy that guides its POG.
GUIDED_BASELINES: dict[str, str] = {"nl_guided_pog": "nightlight", "lc_guided_pog": "built_up_share"}


def guided_tiers(
    cluster_means: Mapping[int, float] | pd.Series, bottom: int | None = None, decimals: int = 9
) -> list[list[int]]:
    """Tiers of clusters (least developed first) ordered by their average proxy value.

    Averages equal after rounding to ``decimals`` share a tier; clusters with no finite average
    are left out (incomparable).  ``bottom`` (the uninhabited cluster) is its own lowest tier.
    """
    means = pd.Series(dict(cluster_means), dtype=float)
    if bottom is not None:
        means = means.drop(index=bottom, errors="ignore")
    means = means[np.isfinite(means.to_numpy())].round(decimals)
    tiers = [sorted(int(c) for c in g.index) for _, g in means.groupby(means, sort=True)]
    return ([[int(bottom)]] if bottom is not None else []) + tiers


def tiers_from_line(line: str, bottom: int | None = None, known_ids: Sequence[int] | None = None) -> list[list[int]]:
    """Tiers (least developed first) from a line-syntax POG, most developed first, e.g. ``3=4>1>0``.

    The line is validated by the POG parser (clear error naming the column); ``bottom`` is added
    below everything unless the line already ranks it.
    """
    pogs.parse_line(line, source="guided POG", known_ids=known_ids)
    body = line.split("#", 1)[0]
    tiers = [sorted(int(x) for x in t.split("=")) for t in reversed(body.strip().split(">"))]
    if bottom is not None and not any(bottom in t for t in tiers):
        tiers = [[int(bottom)], *tiers]
    return tiers


def tier_scores(tiers: Sequence[Sequence[int]]) -> dict[int, float]:
    """Cluster -> normalised tier in [0, 1] (bottom tier 0, top tier 1; one tier -> 0.5)."""
    n = len(tiers)
    return {int(c): (i / (n - 1) if n > 1 else 0.5) for i, tier in enumerate(tiers) for c in tier}


def cluster_means(members: pd.DataFrame, proxies: pd.DataFrame, proxy: str) -> pd.Series:
    """Average ``proxy`` per cluster over every member tile-year that has a value."""
    joined = members[["year", "tile_id", "cluster_id"]].merge(
        proxies[["year", "tile_id", proxy]], on=["year", "tile_id"], how="inner")
    values = pd.to_numeric(joined[proxy], errors="coerce")
    return values.groupby(joined["cluster_id"]).mean().dropna()


def guided_scores(members: pd.DataFrame, tiers: Sequence[Sequence[int]]) -> pd.DataFrame:
    """Per member tile-year: its cluster's tier and normalised tier score (NaN if unranked)."""
    score_of = tier_scores(tiers)
    level_of = {int(c): i for i, tier in enumerate(tiers) for c in tier}
    out = members[["year", "tile_id", "cluster_id"]].copy()
    out["tier"] = out["cluster_id"].map(level_of).astype("Int64")
    out["score"] = out["cluster_id"].map(score_of).astype(float)
    out["n_tiers"] = len(tiers)
    return out


def tiers_to_line(tiers: Sequence[Sequence[int]]) -> str:
    """Line syntax, most developed first."""
    return ">".join("=".join(str(c) for c in sorted(t)) for t in reversed(list(tiers)))
