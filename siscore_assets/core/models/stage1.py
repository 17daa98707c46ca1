"""Stage 1 in one call each: the habitation model and a country's clusters.

The habitation model is the small supervised CNN (``pretraining: supervised``) or the ResNet-18
with a mean-teacher consistency loss on unlabelled tiles (``pretraining: mean_teacher``).  A
country's clusters are fitted on a seeded sample of its inhabited tile-years (k-means, DeepCluster
or a ready-made cluster folder); every other inhabited tile-year is assigned to its nearest
centroid batch by batch.  Both return dataclasses the Dagster assets write and report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery import preview
from siscore_assets.core.imagery.tile_folder import IMAGE_SUFFIXES, header_side, read_rgb
from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models import (
    batch_inference,
    clustering,
    deepcluster,
    folder_clusters,
    pretraining,
    scene_features,
)
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models.clustering import ClusterResult
from siscore_assets.core.models.habitation import CLASSES, HabitationModel

MEAN_TEACHER = "mean_teacher"
STATS = "stats"
#: Tile-years embedded and assigned to their nearest centroid at a time.
ASSIGN_BATCH = 8192


def uses_mean_teacher(m: ModelSettings) -> bool:
    """Whether Stage 1 is the ResNet-18 mean teacher (it reads unlabelled tiles)."""
    return m.pretraining == MEAN_TEACHER


def pretrain_image_px(m: ModelSettings) -> int:
    """The pretraining images' size.  Mean teacher: ``pretrain_px``, at least the scorer's tensor
    size (its bottom cluster and held-out label check read the same images: never upsampled);
    supervised: the small CNN's ``pretrain_px``."""
    return max(m.pretrain_px, m.tensor_px) if uses_mean_teacher(m) else m.pretrain_px


def majority_counts(soft_labels: np.ndarray) -> dict[str, int]:
    """Pretraining images per majority class (``urban`` / ``rural`` / ``uninhabited``)."""
    majority = pd.Series(np.asarray(CLASSES)[soft_labels.argmax(axis=1)]).value_counts()
    return {str(k): int(v) for k, v in majority.items()}


@dataclass
class HabitationTraining:
    """The trained habitation model, its per-epoch history, held-out metrics (empty without
    held-out images) and what the mean teacher adds to report (empty when supervised)."""

    model: HabitationModel
    history: list[dict]
    heldout: dict[str, float]
    details: dict = field(default_factory=dict)


def train_habitation_model(
    images: np.ndarray,
    soft_labels: np.ndarray,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    m: ModelSettings,
    *,
    unlabelled: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    device: str | None = None,
) -> HabitationTraining:
    """Train on ``images[train_idx]`` as ``m.pretraining`` says; evaluate on ``held_idx``.

    Mean teacher: :func:`pretraining.train_pretrained` on ``pretrain_px`` images with the
    unlabelled tiles (``groups``: the same place).  Supervised: the small CNN,
    ``pretrain_epochs`` at ``pretrain_px``."""
    details: dict = {}
    if uses_mean_teacher(m):
        model, history = pretraining.train_pretrained(
            images[train_idx],
            soft_labels[train_idx],
            m,
            unlabelled=unlabelled,
            groups=groups,
            seed=m.seed,
            device=device,
        )
        details = {
            "recipe": m.recipe,
            "unlabelled_images": 0 if unlabelled is None else len(unlabelled),
            "arch": "resnet18",
            "final_consistency": float(history[-1]["consistency"]),
        }
    else:
        model, history = habitation_lib.train_habitation(
            images[train_idx],
            soft_labels[train_idx],
            epochs=m.pretrain_epochs,
            seed=m.seed,
            input_px=m.pretrain_px,
            device=device,
            normalize=m.normalize,
        )
    held = (
        habitation_lib.evaluate_habitation(model, images[held_idx], soft_labels[held_idx])
        if len(held_idx)
        else {}
    )
    return HabitationTraining(model, history, held, details)


@dataclass
class CountryClusters:
    """A country's Stage-1 clusters over all its tile-years.

    ``labels`` (one per tile-year): urban ``0..k_urban-1``, rural up to ``k - 1``, the uninhabited
    cluster ``k``.  ``cluster_model`` embeds the space the centroids live in (the DeepCluster
    encoder, else the habitation model).  ``members`` / ``summary`` are the `cluster_members` /
    `clusters` rows (``members`` None when ``tiles`` has no tile ids); ``sheet`` the contact
    sheet (one row per cluster, or the folder's images)."""

    result: ClusterResult
    cluster_model: HabitationModel
    labels: np.ndarray
    inhabited: np.ndarray
    urban: np.ndarray
    fit_rows: np.ndarray
    members: pd.DataFrame | None
    summary: pd.DataFrame
    sheet: np.ndarray
    folder_images: dict[int, int] | None = None
    deepcluster_history: list[dict] = field(default_factory=list)
    silhouettes: pd.DataFrame | None = None
    extra_labels: np.ndarray | None = None

    @property
    def k(self) -> int:
        """Inhabited clusters (the uninhabited cluster's id)."""
        return self.result.k_urban + self.result.k_rural


def assign_in_batches(
    result: ClusterResult,
    model: HabitationModel,
    images,
    rows: np.ndarray,
    groups: np.ndarray,
    batch: int = ASSIGN_BATCH,
) -> np.ndarray:
    """Nearest-centroid cluster ids of ``images[rows]`` (``groups``: urban mask of all rows),
    embedded and assigned ``batch`` rows at a time."""
    out = np.empty(len(rows), dtype=np.int64)
    start = 0
    for part in np.array_split(rows, max(1, -(-len(rows) // batch))) if len(rows) else []:
        out[start : start + len(part)] = clustering.assign_clusters(
            result, batch_inference.embed_rows(model, images, part), groups[part]
        )
        start += len(part)
    return out


def uses_stats(m: ModelSettings) -> bool:
    """Whether the filter and the cluster space are scene descriptors (``stage1_features``)."""
    return m.stage1_features == STATS


@dataclass
class ExtraImages:
    """More unlabelled images of the country (``stage1_extra_images``): their descriptors and
    the filter's inhabited / urban calls; they join the cluster fit and get a cluster each."""

    desc: np.ndarray
    inhabited: np.ndarray
    urban: np.ndarray


def extra_image_paths(folders: Sequence[Path]) -> list[Path]:
    """Every image under the extra folders (recursively, sorted): their names and sub-folders
    are discarded, so a cluster folder given here is just more images of the country."""
    out: list[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"stage1_extra_images: {folder} is not a folder")
        out += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return out


def read_extra_image(path: Path, tile_px: int | None) -> np.ndarray:
    """One extra image (``stage1_extra_images``), refused unless it is the size of the country's
    stored tiles (``tile_px``; None: any size): descriptors change with an image's size, so one
    of another size would be clustered unlike the tiles.  Errors name the file (and both
    sizes)."""
    try:
        img = read_rgb(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if tile_px is not None and img.shape[:2] != (tile_px, tile_px):
        raise ValueError(
            f"{path}: stage1_extra_images image is {img.shape[1]}x{img.shape[0]} px, but the "
            f"country's tiles are {tile_px}x{tile_px} px: give the extra images at the tiles' size"
        )
    return img


def extra_images(
    paths: Sequence[Path], filter_model: scene_features.HabitationStats, tile_px: int
) -> ExtraImages:
    """Descriptors of the extra images (read 256 at a time) and the filter's calls on them; every
    image must be ``tile_px`` square, the size of the country's stored tiles
    (:func:`read_extra_image`): every header is checked before any descriptor is taken."""
    for p in paths:  # headers first: a wrong size is found before minutes of descriptors
        if header_side(p) not in (None, tile_px):
            read_extra_image(p, tile_px)  # the error naming the file and both sizes
    parts = []
    for lo in range(0, len(paths), 256):
        batch = [read_extra_image(p, tile_px) for p in paths[lo : lo + 256]]
        parts.append(scene_features.descriptors(np.stack(batch)))
    desc = np.concatenate(parts) if parts else np.zeros((0, len(scene_features.DESCRIPTOR_NAMES)))
    probs = filter_model.predict_desc(desc) if len(desc) else np.zeros((0, 3), np.float32)
    inhabited = probs[:, 2] < habitation_lib.UNINHABITED_AT
    return ExtraImages(desc, inhabited, inhabited & (probs[:, 0] >= probs[:, 1]))


def assign_stats_in_batches(
    result: ClusterResult, images, rows: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """Nearest-centroid ids of ``images[rows]`` in the descriptor space, a batch at a time."""
    out = np.empty(len(rows), dtype=np.int64)
    start = 0
    for part in np.array_split(rows, max(1, -(-len(rows) // ASSIGN_BATCH))) if len(rows) else []:
        desc = scene_features.cluster_space(scene_features.descriptor_rows(images, part))
        out[start : start + len(part)] = clustering.assign_clusters(result, desc, groups[part])
        start += len(part)
    return out


def fit_stats_clusters(
    images,
    fit_rows: np.ndarray,
    urban: np.ndarray,
    m: ModelSettings,
    extra: ExtraImages | None,
) -> tuple[ClusterResult, np.ndarray | None]:
    """k-means on the descriptors of the sampled inhabited tile-years and the inhabited extra
    images, urban and rural apart, K by silhouette; returns the result and each extra image's
    cluster id (-1 for the uninhabited ones, which the caller sets to K)."""
    x = scene_features.cluster_space(scene_features.descriptor_rows(images, fit_rows))
    mask = urban[fit_rows]
    if extra is not None and extra.inhabited.any():
        x = np.concatenate([x, scene_features.cluster_space(extra.desc[extra.inhabited])])
        mask = np.concatenate([mask, extra.urban[extra.inhabited]])
    result = clustering.cluster_tiles(
        x,
        mask,
        k_range_urban=range(m.k_range_urban[0], m.k_range_urban[1] + 1),
        k_range_rural=range(m.k_range_rural[0], m.k_range_rural[1] + 1),
        seed=m.seed,
    )
    extra_labels = None
    if extra is not None:
        extra_labels = np.full(len(extra.desc), -1, dtype=np.int64)
        extra_labels[extra.inhabited] = result.labels[len(fit_rows) :]
        result.labels = result.labels[: len(fit_rows)]
    return result, extra_labels


def silhouette_table(result: ClusterResult) -> pd.DataFrame:
    """One row per (group, K) tried: its mean silhouette."""
    return pd.DataFrame(
        [
            {"group": g, "k": kk, "silhouette": s}
            for g, d in result.silhouettes.items()
            for kk, s in d.items()
        ]
    )


def cluster_country(
    tiles: pd.DataFrame,
    images,
    model: HabitationModel,
    m: ModelSettings,
    method: str,
    *,
    by_cluster: dict[int, np.ndarray] | None = None,
    folder_source: str = "cluster folder",
    device: str | None = None,
    country: str = "",
    extra: ExtraImages | None = None,
) -> CountryClusters:
    """Cluster a country's tile-years (``tiles``: `patches` rows with the `habitation` columns
    ``inhabited`` / ``urban``; ``images``: their rows, read by index).

    With ``by_cluster`` (a cluster folder's images by id) the folder's clusters are used and
    every inhabited tile-year is assigned to them; else ``method`` (``kmeans`` or
    ``deepcluster``) is fitted on a seeded sample of at most ``m.cluster_sample`` inhabited
    tile-years and the rest are assigned to the nearest centroid.  With ``stage1_features:
    stats`` the k-means space is the scene descriptors and ``extra`` images join the fit."""
    inhabited = tiles["inhabited"].fillna(False).to_numpy(bool)
    urban = tiles["urban"].fillna(False).to_numpy(bool)
    fit_rows = clustering.fit_sample(np.flatnonzero(inhabited), m.cluster_sample, m.seed)
    labels = np.full(len(tiles), -1, dtype=np.int64)
    history: list[dict] = []
    sil = extra_labels = None
    stats = uses_stats(m) and by_cluster is None
    if stats and method != "kmeans":
        raise ValueError(
            f"{country}: stage1_features: stats clusters with k-means; set clusters: kmeans"
        )
    if by_cluster is not None:
        result = folder_clusters.folder_cluster_result(
            model, by_cluster, m.folder_urban_clusters, source=folder_source
        )
        cluster_model, todo = model, np.flatnonzero(inhabited)
        folder_images = {c: len(v) for c, v in by_cluster.items()}
        sheet = preview.contact_sheet(
            np.concatenate([by_cluster[c][:8] for c in sorted(by_cluster)]), cols=8
        )
    else:
        if inhabited.sum() < 2:
            raise ValueError(f"{country}: fewer than 2 inhabited tiles; nothing to cluster")
        if stats:
            result, extra_labels = fit_stats_clusters(images, fit_rows, urban, m, extra)
            cluster_model = model
        # k-means on the pretrained encoder's features, or DeepCluster (alternating k-means
        # pseudo-labels and CNN training) when the country asks for `clusters: deepcluster`.
        else:
            result, cluster_model, history = deepcluster.cluster_inhabited(
                method,
                model,
                images[fit_rows],
                urban[fit_rows],
                k_range_urban=range(m.k_range_urban[0], m.k_range_urban[1] + 1),
                k_range_rural=range(m.k_range_rural[0], m.k_range_rural[1] + 1),
                seed=m.seed,
                rounds=m.deepcluster_rounds,
                epochs_per_round=m.deepcluster_epochs,
                device=device,
            )
        labels[fit_rows] = result.labels
        todo = np.setdiff1d(np.flatnonzero(inhabited), fit_rows)
        folder_images = None
        sil = silhouette_table(result)
    k = result.k_urban + result.k_rural
    labels[~inhabited] = k  # the uninhabited cluster = K
    groups = urban if result.k_urban else np.zeros(len(tiles), bool)
    if stats:
        labels[todo] = assign_stats_in_batches(result, images, todo, groups)
        if extra_labels is not None:
            extra_labels[extra_labels < 0] = k
    else:
        labels[todo] = assign_in_batches(result, cluster_model, images, todo, groups)
    if folder_images is None:
        sheet = preview.cluster_sheet(images, labels, k + 1, seed=m.seed)
    members, summary = clustering.cluster_tables(
        tiles,
        labels,
        k,
        result.k_urban,
        inhabited,
        urban,
        folder_images=folder_images,
        extra_images=None
        if extra_labels is None
        else {int(c): int(n) for c, n in zip(*np.unique(extra_labels, return_counts=True))},
    )
    return CountryClusters(
        result=result,
        cluster_model=cluster_model,
        labels=labels,
        inhabited=inhabited,
        urban=urban,
        fit_rows=fit_rows,
        members=members,
        summary=summary,
        sheet=sheet,
        folder_images=folder_images,
        deepcluster_history=history,
        silhouettes=sil,
        extra_labels=extra_labels,
    )
