"""Stage 1 from ready-made clusters (``<folder>/<id>/*.png``, e.g. the paper's 22 for PRK).

The folder's ids are the clusters: ids below ``k_urban`` urban, the rest rural; the uninhabited
cluster is max id + 1.  The country's own inhabited tiles are placed in the nearest cluster
(encoder features, centroid of the cluster's images, within the tile's urban / rural group) so
maps and tables show clusters; Stage 3 trains on the folder's images.
"""

from __future__ import annotations

import numpy as np

from siscore_assets.core.models.clustering import ClusterResult, StandardScaler, assign_clusters
from siscore_assets.core.models.habitation import HabitationModel, embed


def folder_cluster_result(
    model: HabitationModel,
    by_cluster: dict[int, np.ndarray],
    k_urban: int,
    source: str = "cluster folder",
) -> ClusterResult:
    """The folder's clusters as a :class:`ClusterResult`: centroids of each cluster's images in
    the encoder's standardised space (``assign_clusters`` places tiles in them)."""
    ids = sorted(by_cluster)
    if ids != list(range(len(ids))):
        raise ValueError(f"{source}: cluster ids must be 0..K-1, found {ids}")
    k = len(ids)
    k_urban = min(k_urban, k)
    feats = {c: embed(model, imgs) for c, imgs in by_cluster.items()}
    scaler = StandardScaler().fit(np.concatenate(list(feats.values())))
    centroids = np.stack([scaler.transform(feats[c]).mean(axis=0) for c in ids])
    return ClusterResult(
        labels=np.zeros(0, np.int64),
        k_urban=k_urban,
        k_rural=k - k_urban,
        silhouettes={},
        centroids=centroids,
        scaler=scaler,
        pca=None,
    )


def folder_clusters(
    model: HabitationModel,
    by_cluster: dict[int, np.ndarray],
    k_urban: int,
    images: np.ndarray,
    inhabited: np.ndarray,
    urban: np.ndarray,
    source: str = "cluster folder",
) -> tuple[ClusterResult, np.ndarray]:
    """The folder's clusters and every tile's label (the uninhabited cluster K for tiles not
    inhabited), for images held in memory (the asset assigns a store's tiles batch by batch)."""
    result = folder_cluster_result(model, by_cluster, k_urban, source)
    k = result.k_urban + result.k_rural
    labels = np.full(len(images), k, dtype=np.int64)
    if inhabited.any():
        groups = urban[inhabited] if result.k_urban else np.zeros(int(inhabited.sum()), bool)
        labels[inhabited] = assign_clusters(result, embed(model, images[inhabited]), groups)
    return result, labels
