"""Stage 1 on real imagery without ImageNet: scene descriptors, a habitation filter on them, and
the descriptors a country's inhabited tiles are clustered on.

Measured on the North Korea sample's real images (``python -m benchmarks.stage1_real``): the
``cpu`` recipe's mean-teacher ResNet, learnt from 1,000 labelled images and the district's
tiles, never calls a tile urban and its embeddings cluster at NMI 0.50 against the paper's 22
clusters.  A few dozen plain numbers per image do better, so with ``stage1_features: stats``
Stage 1 uses them:

* the **filter** is a class-balanced multinomial logistic regression on every descriptor
  (:data:`DESCRIPTOR_NAMES`): balanced, because urban images are ~9 % of the labels and an
  unweighted fit calls half the urban clusters rural;
* the **clusters** are k-means on the first :data:`CLUSTER_COLUMNS` descriptors (RGB quantiles
  and mean gradient at 256 px), urban and rural apart, K by silhouette in the country's range.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from siscore_assets.core.models import batch_inference, colour_stats
from siscore_assets.core.models.common import check_images, iter_batches
from siscore_assets.core.storage.files import atomic_path
from siscore_assets.core.storage.tile_store import open_stack

#: Descriptors are taken at this size (a tile's native 256 px), or at a smaller image's own size
#: (never upsampled: a country's tiles and extra images share one size).
DESCRIPTOR_PX = 256
_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_GRAD_PX = (64, 128, 256)
COLOUR_NAMES: tuple[str, ...] = (
    *(f"{c}_p{int(q * 100)}" for c in "rgb" for q in _QUANTILES),
    "gradient_mean",
)
#: The cluster space: RGB quantiles and the mean luminance gradient (16 numbers).
CLUSTER_COLUMNS = len(COLOUR_NAMES)
EXTRA_NAMES: tuple[str, ...] = (
    *(
        f"grad{px}_{what}"
        for px in _GRAD_PX
        for what in ("q50", "q75", "q90", "q97", "axis_aniso", "diag_aniso")
    ),
    *(f"sat_q{q}" for q in (10, 50, 90)),
    *(f"lum_q{q}" for q in (2, 25, 75, 98)),
    "bright_share",
)
DESCRIPTOR_NAMES: tuple[str, ...] = (
    COLOUR_NAMES + colour_stats.stat_names(DESCRIPTOR_PX) + EXTRA_NAMES
)
_KIND = "siscore.habitation_stats"


def _colour(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    flat = x.reshape(n, 3, -1)
    q = torch.stack([flat.quantile(v, dim=2) for v in _QUANTILES], dim=2).reshape(n, -1)
    lum = x.mean(1, keepdim=True)
    grad = (lum[..., 1:] - lum[..., :-1]).abs().mean((1, 2, 3)) + (
        lum[:, :, 1:] - lum[:, :, :-1]
    ).abs().mean((1, 2, 3))
    return torch.cat([q, grad[:, None]], dim=1)


def _extra(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    lum = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    cols = []
    for px in _GRAD_PX:
        side = min(px, lum.shape[-1])
        lm = torch.nn.functional.interpolate(lum, size=(side, side), mode="area")
        gx = (lm[..., 1:] - lm[..., :-1])[:, :, :-1, :]
        gy = (lm[:, :, 1:] - lm[:, :, :-1])[..., :-1]
        mag = (gx**2 + gy**2).sqrt().reshape(n, -1)
        cols += [mag.quantile(v, dim=1) for v in (0.5, 0.75, 0.9, 0.97)]
        ex, ey = (gx**2).reshape(n, -1).mean(1), (gy**2).reshape(n, -1).mean(1)
        d1, d2 = ((gx + gy) ** 2).reshape(n, -1).mean(1), ((gx - gy) ** 2).reshape(n, -1).mean(1)
        cols += [(ex - ey).abs() / (ex + ey + 1e-8), (d1 - d2).abs() / (d1 + d2 + 1e-8)]
    mx, mn = x.max(1).values, x.min(1).values
    sat = ((mx - mn) / mx.clamp_min(1e-3)).reshape(n, -1)
    cols += [sat.quantile(v, dim=1) for v in (0.1, 0.5, 0.9)]
    flat = lum.reshape(n, -1)
    cols += [flat.quantile(v, dim=1) for v in (0.02, 0.25, 0.75, 0.98)]
    cols.append((flat > flat.median(1, keepdim=True).values * 1.3).float().mean(1))
    return torch.stack(cols, dim=1)


def descriptors(images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float64 (N, len(DESCRIPTOR_NAMES)); the same image, the same row."""
    imgs = check_images(images)
    out = []
    for sl in iter_batches(len(imgs), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(imgs[sl])).permute(0, 3, 1, 2).float() / 255.0
        px = min(DESCRIPTOR_PX, x.shape[-1])
        if x.shape[-1] != px:
            x = torch.nn.functional.interpolate(x, size=(px, px), mode="area")
        with torch.no_grad():
            st = colour_stats.all_stats(x, min(64, px), px)
            out.append(torch.cat([_colour(x), st, _extra(x)], dim=1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(DESCRIPTOR_NAMES)))


def cluster_space(desc: np.ndarray) -> np.ndarray:
    """The descriptors k-means clusters on (the first :data:`CLUSTER_COLUMNS`)."""
    return np.asarray(desc)[:, :CLUSTER_COLUMNS]


@dataclass
class HabitationStats:
    """The filter: a standardised, class-balanced logistic regression over the descriptors;
    ``predict`` gives (N, 3) urban / rural / uninhabited probabilities."""

    pipeline: Pipeline
    names: tuple[str, ...] = DESCRIPTOR_NAMES

    def predict_desc(self, desc: np.ndarray) -> np.ndarray:
        """Probabilities from descriptors already computed."""
        proba = self.pipeline.predict_proba(desc)
        out = np.zeros((len(desc), 3), np.float32)
        out[:, self.pipeline.classes_] = proba
        return out

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Probabilities of uint8 images."""
        return self.predict_desc(descriptors(images))


def fit_habitation_stats(
    desc: np.ndarray, soft_labels: np.ndarray, c: float = 1.0
) -> HabitationStats:
    """Fit the filter on descriptors and soft labels (majority class; ties to the first of urban,
    rural, uninhabited).  Every class must have at least one majority image."""
    y = np.asarray(soft_labels).argmax(axis=1)
    missing = sorted({0, 1, 2} - set(y.tolist()))
    if missing:
        raise ValueError(
            f"habitation labels: no majority image of class(es) {missing} "
            "(0 urban, 1 rural, 2 uninhabited); label some before training the filter"
        )
    pipe = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    )
    pipe.fit(np.asarray(desc, dtype=np.float64), y)
    return HabitationStats(pipe)


def heldout_metrics(
    stats: HabitationStats, desc: np.ndarray, soft_labels: np.ndarray
) -> dict[str, float]:
    """Accuracy against the majority label and urban / uninhabited recall on held-out rows."""
    if not len(desc):
        return {}
    pred = stats.predict_desc(desc).argmax(1)
    true = np.asarray(soft_labels).argmax(1)
    out = {"accuracy": float((pred == true).mean()), "images": float(len(true))}
    for k, name in enumerate(("urban", "rural", "uninhabited")):
        if (true == k).any():
            out[f"{name}_recall"] = float((pred[true == k] == k).mean())
    return out


def save_stats(stats: HabitationStats, path: str | Path) -> Path:
    """Pickle the filter atomically (with a kind tag checked on load)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps({"kind": _KIND, "names": stats.names, "model": stats}))
    return path


def load_stats(path: str | Path) -> HabitationStats:
    """The filter :func:`save_stats` wrote; a clear error for another file or other features."""
    raw = pickle.loads(Path(path).read_bytes())
    if not isinstance(raw, dict) or raw.get("kind") != _KIND:
        raise ValueError(f"{path}: not a habitation statistics filter")
    if tuple(raw["names"]) != DESCRIPTOR_NAMES:
        raise ValueError(f"{path}: written for other descriptors; retrain 'habitation_model'")
    return raw["model"]


def habitation_block(
    model_path: str, store_path: str, start: int, stop: int, device: str | None = None
) -> np.ndarray:
    """(stop - start, 3) probabilities of store rows ``start:stop`` (a ``map_store`` block)."""
    stats = load_stats(model_path)
    out = batch_inference.map_rows(
        stats.predict, open_stack(store_path), np.arange(start, stop), batch_inference.BATCH
    )
    return out.reshape(-1, 3).astype(np.float32)


def descriptor_rows(images, rows: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Descriptors of ``images[rows]`` (a store read by rows), ``batch`` rows at a time."""
    parts = (
        [
            descriptors(np.asarray(images[part]))
            for part in np.array_split(rows, max(1, -(-len(rows) // batch)))
        ]
        if len(rows)
        else []
    )
    return np.concatenate(parts) if parts else np.zeros((0, len(DESCRIPTOR_NAMES)))
