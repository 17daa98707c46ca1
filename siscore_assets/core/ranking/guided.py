"""Data-guided POGs: rank clusters by the mean of a development proxy over their tiles.

The paper's NL-guided and land-cover-guided baselines: average a per-tile proxy (nightlight,
built-up share, building floor area; from a tile table or a raster) over each Stage-1
cluster, then order the clusters by that mean, tying clusters whose means are within a
tolerance.  The result is an ordinary :class:`~siscore_assets.core.ranking.Pog`, so it can join
the human annotators or stand alone as a baseline model (:func:`baseline_tile_scores`: a tile
scores its cluster's ``guided_score``, without any trained scorer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.ranking.graph import Pog

__all__ = [
    "BASELINE_PROXIES",
    "baseline_tile_scores",
    "cluster_means",
    "guided_pog",
    "guided_scores",
    "raster_tile_means",
]

#: The paper's guided-POG baseline models -> the proxy whose guided POG scores the tiles.
BASELINE_PROXIES: dict[str, str] = {
    "nl_guided_pog": "nightlight",
    "lc_guided_pog": "built_up_share",
}


def cluster_means(
    cluster_ids: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray
) -> dict[int, tuple[float, int]]:
    """``{cluster: (mean value, tiles with a value)}`` over tiles; NaN values (tiles the proxy
    does not cover) are skipped, and a cluster with none is left out."""
    ids = np.asarray(cluster_ids, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ids.shape != v.shape or ids.ndim != 1:
        raise ValueError(
            f"cluster_ids and values must be 1-D and the same length, got {ids.shape} and {v.shape}"
        )
    ok = np.isfinite(v)
    if (ids[ok] < 0).any():
        raise ValueError("cluster ids must be non-negative")
    if not ok.any():
        return {}
    n = np.bincount(ids[ok])
    total = np.bincount(ids[ok], weights=v[ok], minlength=len(n))
    return {int(c): (float(total[c] / n[c]), int(n[c])) for c in np.flatnonzero(n)}


def guided_pog(
    means: Mapping[int, float], *, tolerance: float = 0.02, higher_is_more_developed: bool = True
) -> Pog:
    """Total preorder of clusters by proxy mean, ties within ``tolerance``.

    ``tolerance`` is a fraction of the range of the means (so it means the same for nightlight
    radiance and for floor area): walking from the most developed cluster down, a cluster joins
    the current tier while its mean is within ``tolerance * (max - min)`` of the tier's first
    (highest) mean, else it opens a new tier.  0 ties only exactly equal means.  Clusters with a
    NaN mean are left out (incomparable).
    """
    if not 0.0 <= tolerance <= 1.0:
        raise ValueError(f"tolerance must be in [0, 1] (a fraction of the range), got {tolerance}")
    items = [(int(c), float(m)) for c, m in means.items() if np.isfinite(m)]
    if not items:
        raise ValueError("no cluster has a finite proxy mean")
    sign = 1.0 if higher_is_more_developed else -1.0
    items.sort(key=lambda cm: (-sign * cm[1], cm[0]))  # most developed first, ties by id
    values = [m for _, m in items]
    gap = tolerance * (max(values) - min(values))
    tiers: list[list[int]] = []
    top = None
    for cid, m in items:
        if top is None or sign * (top - m) > gap:
            tiers.append([cid])
            top = m
        else:
            tiers[-1].append(cid)
    return Pog.from_tiers(tiers[::-1])


def guided_scores(pog: Pog, ids: Sequence[int]) -> dict[int, float]:
    """A baseline score per cluster from a guided POG: its tier's averaged rank scaled to [0, 1]
    (1 = most developed); clusters the POG leaves out get NaN."""
    r = pog.rank_vector(list(ids))
    lo, hi = np.nanmin(r), np.nanmax(r)
    scaled = (r - lo) / (hi - lo) if hi > lo else np.where(np.isnan(r), np.nan, 0.5)
    return {int(c): float(s) for c, s in zip(ids, scaled)}


def baseline_tile_scores(
    members: pd.DataFrame, cluster_table: pd.DataFrame, bottom: int, n_tiers: int
) -> pd.DataFrame:
    """Per member tile-year, the baseline score of one guided POG: its cluster's ``guided_score``.

    ``cluster_table`` is that proxy's rows of `guided_cluster_means` (cluster_id, tier with
    1 = least developed, guided_score) and ``n_tiers`` its POG's tier count.  The uninhabited
    cluster ``bottom`` sits below everything: tier 0, score 0.  Clusters the POG leaves out (no
    proxy value) get tier and score NaN.  ``n_tiers`` in the result counts the bottom tier too.
    """
    table = cluster_table.set_index("cluster_id")
    if not table.index.is_unique:
        raise ValueError("cluster_table has more than one row per cluster (pass one proxy's rows)")
    out = members[["year", "tile_id", "cluster_id"]].copy()
    tier = out["cluster_id"].map(table["tier"]).astype("Int64")
    score = out["cluster_id"].map(table["guided_score"]).astype(float)
    is_bottom = out["cluster_id"] == bottom
    out["tier"] = tier.mask(is_bottom, 0)
    out["score"] = score.mask(is_bottom, 0.0)
    out["n_tiers"] = int(n_tiers) + 1
    return out


def raster_tile_means(path: str | Path, tiles: Sequence[Tile], *, band: int = 1) -> np.ndarray:
    """Mean of a raster's valid pixels inside each tile (any CRS; nodata and NaN skipped).

    Each tile's Web-Mercator bounds are transformed to the raster's CRS and read as one
    window (``boundless``: tiles off the raster give NaN).  Pixels are counted when their
    window overlaps the tile, the usual zonal-mean approximation for rasters coarser than a tile
    (VIIRS ~460 m vs a 2.45 km tile) or finer (land cover at 10 m).
    """
    import math

    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    out = np.full(len(tiles), np.nan)
    with rasterio.open(path) as src:
        for i, tile in enumerate(tiles):
            left, bottom, right, top = transform_bounds("EPSG:3857", src.crs, *tile.bounds_3857())
            exact = from_bounds(left, bottom, right, top, transform=src.transform)
            col0, row0 = math.floor(exact.col_off + 1e-9), math.floor(exact.row_off + 1e-9)
            col1 = max(col0 + 1, math.ceil(exact.col_off + exact.width - 1e-9))
            row1 = max(row0 + 1, math.ceil(exact.row_off + exact.height - 1e-9))
            window = Window(col0, row0, col1 - col0, row1 - row0)  # every pixel touching the tile
            data = src.read(band, window=window, masked=True, boundless=True)
            vals = np.ma.masked_invalid(data.astype(np.float64)).compressed()
            if vals.size:
                out[i] = float(vals.mean())
    return out


def proxy_values(
    members: pd.DataFrame,
    names: Sequence[str],
    *,
    rasters: Mapping[str, str] | None = None,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per member tile-year (``year, tile_id, cluster_id``), each proxy's value: sampled from the
    country's proxy ``rasters`` (mean of the pixels in each tile), else joined from the yearly
    proxy ``table``.  A name neither has is left out (the caller decides whether that is an
    error)."""
    out = members[["year", "tile_id", "cluster_id"]].copy()
    if rasters is not None:
        tiles = members.drop_duplicates("tile_id")
        objs = [
            Tile(int(z), int(x), int(y))
            for z, x, y in tiles[["z", "x", "y"]].itertuples(index=False)
        ]
        for name in names:
            if name in rasters:
                vals = raster_tile_means(rasters[name], objs)
                out[name] = out["tile_id"].map(dict(zip(tiles["tile_id"], vals)))
        return out
    if table is None:
        raise ValueError("proxy_values needs proxy rasters or a proxy table")
    keep = [n for n in names if n in table.columns]
    return out.merge(table[["year", "tile_id", *keep]], on=["year", "tile_id"], how="left")


def guided_tables(
    country: str, values: pd.DataFrame, names: Sequence[str], ids: Sequence[int], tolerance: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`guided_pogs` (one row per proxy: the POG as line and edges, clusters, tiers) and
    `guided_cluster_means` (one row per proxy x cluster: mean, tiles, tier with 1 = least
    developed, guided_score in [0, 1]) for the proxies ``names`` of ``values``."""
    pog_rows, mean_rows = [], []
    for name in names:
        means = cluster_means(values["cluster_id"].to_numpy(), values[name].to_numpy(float))
        pog = guided_pog({c: v for c, (v, _) in means.items()}, tolerance=tolerance)
        scores = guided_scores(pog, ids)
        least_first = pog.tier_paths(max_paths=1)[0]
        tier_of = {c: t for t, tier in enumerate(least_first, start=1) for c in tier}
        pog_rows.append(
            {
                "country": country,
                "proxy": name,
                "pog_line": pog.to_line(),
                "pog_edges": pog.to_edges(),
                "n_clusters": len(pog.nodes),
                "n_tiers": len(pog.equal),
                "tolerance": tolerance,
            }
        )
        mean_rows += [
            {
                "country": country,
                "proxy": name,
                "cluster_id": c,
                "mean_value": means[c][0] if c in means else np.nan,
                "n_tiles": means[c][1] if c in means else 0,
                "tier": tier_of.get(c),
                "guided_score": scores[c],
            }
            for c in ids
        ]
    return pd.DataFrame(pog_rows), pd.DataFrame(mean_rows)


def with_survey(values: pd.DataFrame, survey_tiles: pd.DataFrame, name: str) -> pd.DataFrame:
    """``values`` (per member tile-year, from :func:`proxy_values`) with one more proxy column
    ``name``: the survey's tile value (`survey_tiles`: year, tile_id, value), NaN where the survey
    puts no cluster.  A survey-guided POG is then made like the NL- and LC-guided ones: listed in
    ``models.guided_proxies`` (and as ``models.guided_annotator``, it joins the annotators)."""
    rows = survey_tiles[["year", "tile_id", "value"]].rename(columns={"value": name})
    out = values.drop(columns=[name], errors="ignore")
    return out.merge(rows, on=["year", "tile_id"], how="left")
