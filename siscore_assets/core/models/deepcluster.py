"""Stage 1 as the paper runs it: DeepCluster (Caron et al., ECCV 2018) on the habitation encoder.

Plain k-means on a frozen encoder clusters whatever the encoder happened to learn (for the
habitation model: urban vs rural vs empty, plus colour and haze).  DeepCluster instead
alternates, for a few rounds,

(a) features of every inhabited tile (eval mode, no augmentation) -> standardise -> PCA
    (whitened) -> L2-normalise -> k-means per group (urban, rural) -> pseudo-labels, and
(b) training the CNN to predict those pseudo-labels through a *freshly initialised* linear
    head (cluster ids are arbitrary from round to round, so an old head would be noise),
    with tiles sampled uniformly over pseudo-classes (so a giant cluster cannot swallow the
    rest: the degenerate solution DeepCluster warns about) and random rot90/flip +
    brightness/contrast jitter (so the features become invariant to what carries no
    development signal),

so the features adapt to the structure of this country's tiles.  After the rounds the final
clustering is :func:`~siscore_assets.core.models.clustering.cluster_tiles` on the trained
encoder's features: K by silhouette over the configured range, urban and rural apart, the
same :class:`ClusterResult` contract as the plain k-means path (so later tiles can be placed
with :func:`assign_clusters` on ``embed(trained_model, tiles)``).

Empty clusters: scikit-learn's Lloyd iterations relocate an empty centroid to the point
farthest from its centre (DeepCluster re-seeds it from a perturbed non-empty centroid; both
keep K clusters); a pseudo-class that is still empty (fewer distinct tiles than K) is
dropped from the head and the sampler, and counted in the history.

Convergence signal (as in the DeepCluster paper): NMI between consecutive rounds'
assignments rises towards 1 as the clustering stabilises.  Differences from the original:
the encoder's own input instead of Sobel-filtered grayscale (RGB, or luminance for a grayscale
encoder: pseudo-labels, training and the final clustering all see what ``embed`` feeds it), Adam
instead of SGD, per-group k-means with the top of each K range instead of one 10k-way k-means.
The tiles stay uint8 and are converted a batch at a time (:class:`ImageBatches`).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from siscore_assets.core.models.clustering import SILHOUETTE_SAMPLE, ClusterResult, cluster_tiles
from siscore_assets.core.models.common import (
    augment_geometric,
    augment_photometric,
    check_images,
    choose_device,
    deterministic,
    iter_batches,
    seed_everything,
)
from siscore_assets.core.models.habitation import HabitationModel, embed, recalibrate_batchnorm
from siscore_assets.core.models.pretraining import ImageBatches

GROUPS: tuple[str, str, str] = ("urban", "rural", "uninhabited")
PSEUDO_N_INIT = 3  # k-means restarts per round (the final clustering uses clustering.N_INIT)


def parse_groups(groups: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(urban, inhabited) bool masks from a bool urban mask or an array of ``GROUPS`` names.

    A bool array means every tile is inhabited (what the ``clusters`` asset passes today);
    strings may also mark tiles ``"uninhabited"``, which are left out of training and
    clustering and get the label ``n_clusters`` (the asset's uninhabited-cluster id).
    """
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have one entry per image ({n},), got shape {g.shape}")
    if g.dtype == bool:
        return g.copy(), np.ones(n, dtype=bool)
    names = g.astype(str)
    bad = sorted(set(names.tolist()) - set(GROUPS))
    if bad:
        raise ValueError(f"groups must be a bool urban mask or names in {GROUPS}; got {bad[:5]}")
    return names == "urban", names != "uninhabited"


def _pseudo_space(features: np.ndarray, n_components: int) -> np.ndarray:
    """Standardise -> whitened PCA -> L2 rows: DeepCluster's preprocessing before k-means.

    Directions without variance are dropped before whitening (dividing by ~0 would blow
    noise up to unit scale); tiles with identical features stay identical.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.shape[0] < 3:
        return x
    z = StandardScaler().fit_transform(x)
    if float(z.var(axis=0).sum()) <= 1e-12:
        return np.zeros((x.shape[0], 1))
    nc = min(n_components, z.shape[1], z.shape[0] - 1)
    pca = PCA(n_components=nc, svd_solver="full").fit(z)
    var = pca.explained_variance_
    keep = var > 1e-9 * var.max()
    z = pca.transform(z)[:, keep] / np.sqrt(var[keep])
    return z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)


def _kmeans_group(z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float | None]:
    """Labels (compacted to 0..k'-1) and silhouette (None when undefined) for one group."""
    n = z.shape[0]
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64), None
    with warnings.catch_warnings():  # "fewer distinct clusters than K": counted as empty
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k, n_init=PSEUDO_N_INIT, random_state=seed).fit_predict(z)
    _, labels = np.unique(labels, return_inverse=True)
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= n:
        return labels.astype(np.int64), None
    sample = min(n, SILHOUETTE_SAMPLE)
    sil = silhouette_score(z, labels, sample_size=sample if sample < n else None, random_state=seed)
    return labels.astype(np.int64), float(sil)


def pseudo_labels(
    features: np.ndarray,
    urban: np.ndarray,
    k_urban: int,
    k_rural: int,
    seed: int,
    n_components: int = 32,
) -> tuple[np.ndarray, dict[str, float | None], int]:
    """One DeepCluster assignment step: (labels, silhouette per group, empty pseudo-classes).

    Urban tiles get ids ``0..k_u'-1``, rural ``k_u'..``; ``k'`` may be below the requested K
    when a group has fewer tiles than K or k-means leaves a cluster empty; the shortfall,
    summed over groups, is the empty count.
    """
    z = _pseudo_space(features, n_components)
    urban = np.asarray(urban, dtype=bool)
    labels = np.empty(len(urban), dtype=np.int64)
    sil: dict[str, float | None] = {}
    empty = 0
    offset = 0
    for name, mask, k in (("urban", urban, k_urban), ("rural", ~urban, k_rural)):
        if not mask.any():
            sil[name] = None
            continue
        lab, s = _kmeans_group(z[mask], k, seed)
        labels[mask] = lab + offset
        used = int(lab.max()) + 1
        empty += max(0, k - used)
        offset += used
        sil[name] = s
    return labels, sil, empty


def uniform_over_classes(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices drawn so every pseudo-class is equally likely (DeepCluster's sampler).

    Each class gets ``ceil(n / k)`` slots filled by a permutation of its members (repeated
    when the class is small), then the pooled list is shuffled and cut to ``n``.
    """
    classes = np.unique(labels)
    per = -(-n // len(classes))
    picks = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        reps = -(-per // len(members))
        pool = np.concatenate([rng.permutation(members) for _ in range(reps)])
        picks.append(pool[:per])
    out = np.concatenate(picks)
    return rng.permutation(out)[:n]


@torch.inference_mode()
def _features(model: HabitationModel, x_all: ImageBatches, batch_size: int) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    out = [
        model.features(x_all[sl].to(dev)).cpu() for sl in iter_batches(x_all.shape[0], batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float64)


def deepcluster(
    model: HabitationModel,
    images: np.ndarray,
    groups: np.ndarray,
    *,
    k_range_urban: Iterable[int],
    k_range_rural: Iterable[int],
    rounds: int = 3,
    seed: int = 0,
    epochs_per_round: int = 1,
    pseudo_k_urban: int | None = None,
    pseudo_k_rural: int | None = None,
    n_components: int = 32,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    brightness: float = 0.1,
    contrast: float = 0.2,
    device: str | torch.device | None = None,
) -> tuple[ClusterResult, HabitationModel, list[dict]]:
    """DeepCluster the tiles, then cluster them with K by silhouette; the input model is untouched.

    ``model`` is the starting encoder (the pretrained habitation model); a copy is trained.
    ``groups``: bool urban mask (all tiles inhabited) or ``GROUPS`` names per tile.
    Pseudo-label K per group defaults to the top of its K range.  ``rounds=0`` is exactly
    the plain path, ``cluster_tiles(embed(model, images), urban, ...)``.

    Returns ``(result, trained_model, history)``: ``result`` as from ``cluster_tiles``
    (labels over all ``images``; uninhabited tiles, if named, get ``result.n_clusters``);
    ``trained_model`` in eval mode, whose ``embed`` is the clustering space (its 3-class
    habitation head is the original one, now stale: keep using the pretrained model as
    the uninhabited filter); one history dict per round: ``round, n_pseudo,
    empty_pseudo_classes, nmi_previous`` (NMI with the previous round's pseudo-labels, None
    in round 0) ``, silhouette_urban, silhouette_rural`` (of that round's pseudo-labels)
    ``, loss, accuracy`` (training, on pseudo-labels) ``, seconds, cpu_seconds, tiles_per_s``, and
    a last entry with ``round = rounds`` for the final features (no training) so the NMI
    of the last training round is visible too.
    """
    imgs = check_images(images)
    n = imgs.shape[0]
    urban_all, inhabited = parse_groups(groups, n)
    k_range_urban, k_range_rural = list(k_range_urban), list(k_range_rural)
    if rounds < 0 or epochs_per_round < 1:
        raise ValueError("rounds must be >= 0 and epochs_per_round >= 1")
    if inhabited.sum() < 2:
        raise ValueError(
            f"DeepCluster needs at least 2 inhabited tiles, got {int(inhabited.sum())}"
        )
    ku = int(pseudo_k_urban or max(k_range_urban, default=1))
    kr = int(pseudo_k_rural or max(k_range_rural, default=1))
    dev = choose_device(device)
    idx_in = np.flatnonzero(inhabited)
    urban = urban_all[idx_in]
    history: list[dict] = []

    trained = copy.deepcopy(model).to(dev)
    with deterministic(dev.type == "cpu"):
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        px = trained.config.input_px
        # the encoder's own input (as `embed` feeds it), converted on the CPU a batch at a time:
        # the images stay uint8, never one float tensor of the whole fit sample
        x_all = ImageBatches(
            [imgs],
            px,
            rows=idx_in,
            grayscale=model.config.grayscale,
            normalize=model.config.normalize,
        )
        previous: np.ndarray | None = None
        for rnd in range(rounds + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            feats = _features(trained, x_all, max(batch_size, 256))
            labels, sil, empty = pseudo_labels(feats, urban, ku, kr, seed + rnd, n_components)
            entry: dict = {
                "round": rnd,
                "n_pseudo": int(labels.max()) + 1,
                "empty_pseudo_classes": empty,
                "nmi_previous": None
                if previous is None
                else float(normalized_mutual_info_score(previous, labels)),
                "silhouette_urban": sil.get("urban"),
                "silhouette_rural": sil.get("rural"),
                "loss": None,
                "accuracy": None,
            }
            previous = labels
            if rnd < rounds:
                entry["loss"], entry["accuracy"] = _train_round(
                    trained,
                    x_all,
                    labels,
                    epochs=epochs_per_round,
                    batch_size=batch_size,
                    lr=lr,
                    weight_decay=weight_decay,
                    brightness=brightness,
                    contrast=contrast,
                    gen=gen,
                    rng=rng,
                )
                recalibrate_batchnorm(trained, x_all, batch_size=max(batch_size, 128))
            entry["seconds"] = time.perf_counter() - t0
            entry["cpu_seconds"] = time.process_time() - c0  # all threads; robust to a busy machine
            entry["tiles_per_s"] = len(idx_in) / max(entry["seconds"], 1e-9)
            history.append(entry)
    trained.eval()

    feats = embed(trained, imgs[idx_in])
    inner = cluster_tiles(
        feats,
        urban,
        k_range_urban=k_range_urban,
        k_range_rural=k_range_rural,
        seed=seed,
        n_components=n_components,
    )
    labels = np.full(n, inner.n_clusters, dtype=np.int64)
    labels[idx_in] = inner.labels
    inner.labels = labels
    return inner, trained, history


def _train_round(
    model: HabitationModel,
    x_all: ImageBatches,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    brightness: float,
    contrast: float,
    gen: torch.Generator,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Train backbone + a fresh linear head on pseudo-labels; returns (mean loss, accuracy)."""
    dev = next(model.parameters()).device
    head = nn.Linear(model.embed_dim, int(labels.max()) + 1).to(dev)
    params = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    opt = torch.optim.Adam(params + list(head.parameters()), lr=lr, weight_decay=weight_decay)
    y_all = torch.from_numpy(labels)
    n = x_all.shape[0]
    tot_loss, tot_correct, seen = 0.0, 0, 0
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(uniform_over_classes(labels, n, rng))
        for sl in iter_batches(n, batch_size):
            idx = order[sl]
            if idx.numel() < 2:  # BatchNorm needs two samples
                continue
            xb = augment_geometric(x_all[idx], gen)
            xb = augment_photometric(xb, gen, brightness=brightness, contrast=contrast).to(dev)
            yb = y_all[idx].to(dev)
            logits = head(model.features(xb))
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * idx.numel()
            tot_correct += int((logits.argmax(1) == yb).sum())
            seen += idx.numel()
    model.eval()
    return tot_loss / max(seen, 1), tot_correct / max(seen, 1)


CLUSTERING_METHODS: tuple[str, str] = ("kmeans", "deepcluster")


def cluster_inhabited(
    method: str,
    model: HabitationModel,
    images: np.ndarray,
    urban: np.ndarray,
    *,
    k_range_urban: Iterable[int],
    k_range_rural: Iterable[int],
    seed: int,
    rounds: int = 3,
    epochs_per_round: int = 1,
    device: str | torch.device | None = None,
) -> tuple[ClusterResult, HabitationModel, list[dict]]:
    """The Stage-1 switch the ``clusters`` asset calls: ``models.clustering`` picks the method.

    ``"kmeans"``: ``cluster_tiles(embed(model, images), urban, ...)``, the model unchanged and
    an empty history.  ``"deepcluster"``: :func:`deepcluster` with ``rounds`` rounds.  Either
    way the returned model's ``embed`` is the space the clusters live in.
    """
    if method == "kmeans":
        result = cluster_tiles(
            embed(model, images),
            urban,
            k_range_urban=k_range_urban,
            k_range_rural=k_range_rural,
            seed=seed,
        )
        return result, model, []
    if method == "deepcluster":
        return deepcluster(
            model,
            images,
            urban,
            k_range_urban=k_range_urban,
            k_range_rural=k_range_rural,
            rounds=rounds,
            seed=seed,
            epochs_per_round=epochs_per_round,
            device=device,
        )
    raise ValueError(f"unknown clustering method {method!r}; use one of {CLUSTERING_METHODS}")
