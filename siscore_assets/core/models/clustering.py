"""Stage 1 clustering: k-means on encoder embeddings, K chosen by silhouette, urban/rural apart.

Preprocessing: features are standardised (each dimension to zero mean, unit variance, so no
channel dominates by scale) and projected by PCA to at most ``n_components`` dimensions
(denoises and makes k-means distances meaningful), fitted once on all inhabited tiles so
urban and rural centroids live in one space.  Urban and rural tiles are then clustered
separately, as the paper's human annotators compare city and countryside clusters apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

N_INIT = 10
SILHOUETTE_SAMPLE = 3000


@dataclass
class ClusterResult:
    """Cluster ids: urban ``0..k_urban-1`` then rural ``k_urban..k_urban+k_rural-1``.

    ``centroids`` are (k_urban + k_rural, d) in the standardised + PCA space given by
    ``scaler`` / ``pca`` (kept so later years' tiles can be assigned with
    :func:`assign_clusters`).  ``silhouettes`` maps group -> {K: score}.
    """

    labels: np.ndarray
    k_urban: int
    k_rural: int
    silhouettes: dict[str, dict[int, float]]
    centroids: np.ndarray
    scaler: StandardScaler | None = field(default=None, repr=False)
    pca: PCA | None = field(default=None, repr=False)

    @property
    def n_clusters(self) -> int:
        return self.k_urban + self.k_rural


def _kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(x)


def choose_k(
    features: np.ndarray, k_range: Iterable[int], seed: int
) -> tuple[int, dict[int, float]]:
    """Pick K with the highest mean silhouette; returns (best K, {K: silhouette}).

    K values outside ``2..N-1`` (silhouette undefined) are skipped; when none is left the
    answer is 1 cluster (or 0 for no samples) with an empty score dict.  Silhouette is
    computed on a seeded subsample of at most ``SILHOUETTE_SAMPLE`` points (it is O(N^2)).
    """
    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    ks = sorted({int(k) for k in k_range if 2 <= int(k) <= n - 1})
    if not ks:
        return (0 if n == 0 else 1), {}
    scores: dict[int, float] = {}
    sample = min(n, SILHOUETTE_SAMPLE)
    for k in ks:
        km = _kmeans(x, k, seed)
        if len(np.unique(km.labels_)) < 2:
            scores[k] = -1.0
            continue
        scores[k] = float(
            silhouette_score(
                x, km.labels_, sample_size=sample if sample < n else None, random_state=seed
            )
        )
    best = max(ks, key=lambda k: (scores[k], -k))  # ties -> fewer clusters
    return best, scores


def _fallback_k(n: int, k_range: Iterable[int]) -> int:
    """K when silhouette cannot decide: the smallest requested K that fits, else 1 or 0."""
    if n == 0:
        return 0
    ks = [int(k) for k in k_range if int(k) >= 1]
    k = min(ks) if ks else 1
    return max(1, min(k, n))


def _cluster_group(
    x: np.ndarray, k_range: Iterable[int], seed: int
) -> tuple[np.ndarray, np.ndarray, int, dict[int, float]]:
    k_range = list(k_range)
    n = x.shape[0]
    k, scores = choose_k(x, k_range, seed)
    if not scores:
        k = _fallback_k(n, k_range)
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, x.shape[1])), 0, scores
    if k == 1:
        return np.zeros(n, dtype=np.int64), x.mean(axis=0, keepdims=True), 1, scores
    km = _kmeans(x, k, seed)
    return km.labels_.astype(np.int64), km.cluster_centers_, k, scores


def _transform(
    x: np.ndarray, n_components: int
) -> tuple[np.ndarray, StandardScaler | None, PCA | None]:
    if x.shape[0] < 2:
        return x, None, None
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    nc = min(n_components, z.shape[1], z.shape[0] - 1)
    if nc < 1:
        return z, scaler, None
    pca = PCA(n_components=nc, svd_solver="full").fit(z)
    return pca.transform(z), scaler, pca


def cluster_tiles(
    features: np.ndarray,
    urban_mask: np.ndarray,
    *,
    k_range_urban: Iterable[int],
    k_range_rural: Iterable[int],
    seed: int,
    n_components: int = 32,
) -> ClusterResult:
    """Cluster urban and rural tiles separately; K per group by silhouette.

    ``features`` (N, D) are the inhabited tiles' embeddings; ``urban_mask`` (N,) bool.
    K-means uses ``N_INIT`` seeded restarts.  A group smaller than its K range gets fewer
    clusters (1 for a single tile, 0 for none) instead of failing.
    """
    x = np.asarray(features, dtype=np.float64)
    mask = np.asarray(urban_mask, dtype=bool)
    if x.ndim != 2 or mask.shape != (x.shape[0],):
        raise ValueError(
            f"features (N, D) and urban_mask (N,) expected, got {x.shape}, {mask.shape}"
        )
    z, scaler, pca = _transform(x, n_components)
    lab_u, cen_u, ku, sil_u = _cluster_group(z[mask], k_range_urban, seed)
    lab_r, cen_r, kr, sil_r = _cluster_group(z[~mask], k_range_rural, seed)
    labels = np.empty(x.shape[0], dtype=np.int64)
    labels[mask] = lab_u
    labels[~mask] = lab_r + ku
    d = z.shape[1]
    centroids = np.concatenate([cen_u.reshape(ku, d), cen_r.reshape(kr, d)], axis=0)
    return ClusterResult(
        labels=labels,
        k_urban=ku,
        k_rural=kr,
        silhouettes={"urban": sil_u, "rural": sil_r},
        centroids=centroids,
        scaler=scaler,
        pca=pca,
    )


def assign_clusters(
    result: ClusterResult, features: np.ndarray, urban_mask: np.ndarray
) -> np.ndarray:
    """Nearest-centroid cluster ids for new tiles, within their own group (urban or rural).

    A tile whose group has no clusters falls back to the nearest centroid of the other group.
    """
    x = np.asarray(features, dtype=np.float64)
    mask = np.asarray(urban_mask, dtype=bool)
    if result.scaler is not None:
        x = result.scaler.transform(x)
    if result.pca is not None:
        x = result.pca.transform(x)
    c = result.centroids
    d = np.empty((x.shape[0], c.shape[0]))
    for j in range(
        c.shape[0]
    ):  # one centroid at a time: (n, k, d) at once was 0.7 GB for 8,192 tiles
        d[:, j] = ((x - c[j]) ** 2).sum(-1)
    ku = result.k_urban
    is_urban_c = np.arange(c.shape[0]) < ku
    own = np.where(mask[:, None], is_urban_c[None, :], ~is_urban_c[None, :])
    has_own = own.any(axis=1)
    own[~has_own] = True
    d = np.where(own, d, np.inf)
    return d.argmin(axis=1).astype(np.int64)


def cluster_tables(
    tiles: pd.DataFrame,
    labels: np.ndarray,
    k: int,
    k_urban: int,
    inhabited: np.ndarray,
    urban: np.ndarray,
    folder_images: dict[int, int] | None = None,
    extra_images: dict[int, int] | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """The `cluster_members` rows (one per tile-year; None when ``tiles`` carries no tile ids)
    and the `clusters` summary (one per cluster, the uninhabited cluster ``k`` last).  With
    ``folder_images`` (cluster -> images in a cluster folder) every id 0..k is listed, with its
    folder image count; with ``extra_images`` (cluster -> extra unlabelled images in it)
    likewise, with that count."""
    country = tiles["country"].iloc[0] if len(tiles) else None
    members = None  # without tile ids the caller joins them (the asset, on tile keys)
    if "tile_id" in tiles:
        members = tiles[["country", "year", "tile_id", "z", "x", "y"]].copy()
        members["cluster_id"], members["inhabited"], members["urban"] = labels, inhabited, urban
    if folder_images is not None:
        ids = np.arange(k + 1)
        group = np.where(ids == k, "uninhabited", np.where(ids < k_urban, "urban", "rural"))
        counts = pd.Series(labels).value_counts()
        summary = pd.DataFrame(
            {
                "country": country,
                "cluster_id": ids,
                "cluster_group": group,
                "n_tiles": [int(counts.get(c, 0)) for c in ids],
                "n_folder_images": [folder_images.get(int(c), 0) for c in ids],
                "k_urban": k_urban,
                "k_rural": k - k_urban,
            }
        )
        return members, summary
    group = np.where(labels == k, "uninhabited", np.where(labels < k_urban, "urban", "rural"))
    summary = (
        pd.DataFrame({"cluster_id": labels, "cluster_group": group})
        .groupby(["cluster_id", "cluster_group"])
        .size()
        .rename("n_tiles")
        .reset_index()
    )
    summary.insert(0, "country", country)
    if extra_images is not None:
        # every id 0..k: a cluster may hold only extra images (no tile-year of its own)
        ids = np.arange(k + 1)
        summary = (
            summary.set_index("cluster_id")
            .reindex(ids)
            .assign(
                country=country,
                cluster_group=np.where(
                    ids == k, "uninhabited", np.where(ids < k_urban, "urban", "rural")
                ),
            )
            .reset_index()
        )
        summary["n_tiles"] = summary["n_tiles"].fillna(0).astype(np.int64)
        summary["n_extra_images"] = [extra_images.get(int(c), 0) for c in ids]
    summary["k_urban"], summary["k_rural"] = k_urban, k - k_urban
    return members, summary


def fit_sample(rows: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """The rows clustering is fitted on: all of them up to ``max_rows``, else a seeded sample
    (sorted), so PCA and k-means cost is bounded whatever the country's size."""
    rows = np.asarray(rows, dtype=np.int64)
    if max_rows < 1 or len(rows) <= max_rows:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
