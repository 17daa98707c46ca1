"""Colour and texture statistics of a tile, and a scene augmentation that spans yearly scenes.

Real Sentinel-2 composites differ from year to year in haze, exposure, colour balance and even
season (the North Korea sample's 2016 scenes are leaf-off and brown, 2017-2019 green), but a
tile's colour still carries development signal (roofs and roads are blue-grey, fields green or
brown).  The statistics below are the scorer's extra inputs and the feature-ranker baseline's
features; the augmentation teaches the CNN that a year's global haze and colour shift is not
development.

The fine-texture statistics (:data:`TEXTURE_NAMES`) are taken at the tile's native resolution
(10 m; buildings and streets are a few pixels there and vanish at the CNN's 64 px) on *log*
luminance high-passed over 3 and 7 pixels: a scene's gain cancels in the log, and the smooth
relief shading of a low winter sun is mostly removed by the high-pass, so they order the same
places alike across seasons (benchmarks/RESULTS.md, issue 10 third pass).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge

from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    check_images,
    images_to_tensor,
    iter_batches,
    resize_tensor,
)
from siscore_assets.core.storage.files import atomic_path

#: Names of the columns :func:`tile_stats` returns, in order.
STAT_NAMES: tuple[str, ...] = (
    *(f"{c}_mean" for c in "rgb"),
    *(f"{c}_std" for c in "rgb"),
    *(f"{c}_q{q}" for c in "rgb" for q in (10, 50, 90)),
    "r_share",
    "g_share",
    "b_share",
    "saturation",
    "value",
    "green_red",
    "blue_red",
    "edge_mean",
    "edge_density",
)
_QUANTILES = (0.1, 0.5, 0.9)

#: Fine-texture statistics at native resolution (:func:`texture_stats`), appended after
#: :data:`STAT_NAMES` when a ``texture_px`` is set.
TEXTURE_NAMES: tuple[str, ...] = tuple(
    f"fine{k}_{what}" for k in (3, 7) for what in ("mean", "q90", "frac")
)
_FINE_STEP = 0.1  # a log-luminance step of ~10 %: an edge of a roof, a road, a field boundary


def stat_names(texture_px: int = 0) -> tuple[str, ...]:
    """The statistics' names: colour / texture at the CNN's size, plus fine texture if asked."""
    return STAT_NAMES + (TEXTURE_NAMES if texture_px else ())


def tile_stats(x01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, len(STAT_NAMES)) statistics (no gradient needed)."""
    x = x01.clamp(0.0, 1.0)
    n = x.shape[0]
    flat = x.reshape(n, 3, -1)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    total = (r + g + b).clamp_min(1e-3)
    mx, mn = x.max(dim=1).values, x.min(dim=1).values
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    dx = (lum[:, :, 1:] - lum[:, :, :-1]).abs()
    dy = (lum[:, 1:, :] - lum[:, :-1, :]).abs()
    edge = dx[:, :-1, :] + dy[:, :, :-1]
    q = torch.quantile(flat, torch.tensor(_QUANTILES, device=x.device), dim=-1)  # (3q, N, 3)
    cols = [
        flat.mean(-1),
        flat.std(-1),
        q.permute(1, 2, 0).reshape(n, 9),
        torch.stack(
            [
                (r / total).mean((1, 2)),
                (g / total).mean((1, 2)),
                (b / total).mean((1, 2)),
                ((mx - mn) / mx.clamp_min(1e-3)).mean((1, 2)),
                mx.mean((1, 2)),
                ((g - r) / (g + r).clamp_min(1e-3)).mean((1, 2)),
                ((b - r) / (b + r).clamp_min(1e-3)).mean((1, 2)),
                edge.mean((1, 2)),
                (edge > 0.08).float().mean((1, 2)),
            ],
            dim=1,
        ),
    ]
    return torch.cat(cols, dim=1)


def texture_stats(x01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] at native resolution -> (N, len(TEXTURE_NAMES)): per high-pass
    width k (3, 7 px), the mean and 90th percentile of |log luminance - its k x k local mean|
    and the share of pixels above a 10 % step."""
    x = x01.clamp(0.0, 1.0)
    n = x.shape[0]
    lum = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    log_lum = torch.log(lum.clamp_min(1.0 / 255.0))
    cols = []
    for k in (3, 7):
        fine = (
            (log_lum - F.avg_pool2d(log_lum, k, 1, k // 2, count_include_pad=False))
            .abs()
            .reshape(n, -1)
        )
        cols += [fine.mean(1), upper_decile(fine), (fine > _FINE_STEP).float().mean(1)]
    return torch.stack(cols, dim=1)


def upper_decile(fine: torch.Tensor) -> torch.Tensor:
    """Each row's 90th-percentile value (the k-th smallest, k = 0.9 n, any size).  On the CPU
    numpy's partition selects the same element about twice as fast as torch's ``kthvalue``."""
    kth = max(1, int(round(0.9 * fine.shape[1])))
    if fine.device.type == "cpu" and not fine.requires_grad:
        return torch.from_numpy(np.partition(fine.numpy(), kth - 1, axis=1)[:, kth - 1].copy())
    return fine.kthvalue(kth, dim=1).values


def all_stats(x01: torch.Tensor, px: int, texture_px: int = 0) -> torch.Tensor:
    """:func:`tile_stats` at ``px`` and, with ``texture_px``, :func:`texture_stats` at that size:
    the scorer's and the feature ranker's inputs from one tensor at the larger of the two sizes."""
    st = tile_stats(resize_tensor(x01, px))
    if texture_px:
        st = torch.cat([st, texture_stats(resize_tensor(x01, texture_px))], dim=1)
    return st


def image_stats(
    images: np.ndarray, px: int = 64, batch_size: int = 256, texture_px: int = 0
) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float64 (N, len(stat_names(texture_px))): colour at ``px``
    (area-resampled), fine texture at ``texture_px`` when set."""
    imgs = check_images(images)
    out = []
    for sl in iter_batches(len(imgs), batch_size):
        x = images_to_tensor(
            imgs[sl], max(px, texture_px)
        )  # fixed normalisation: undone exactly below
        out.append(all_stats(x * PIXEL_STD + PIXEL_MEAN, px, texture_px).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(stat_names(texture_px))))


def augment_scene(x01: torch.Tensor, generator: torch.Generator, strength: float) -> torch.Tensor:
    """Random per-image scene change in [0, 1] RGB: channel gains and offsets, haze (a blend towards
    a bright airlight colour), gamma.  ``strength`` 0 returns the input; 0.25 spans the district's
    2016-2019 differences (2016's red channel is ~0.07 brighter than later years': gains +-0.3,
    offsets +-0.075, haze up to 0.25, gamma 0.76-1.32)."""
    if strength <= 0:
        return x01
    n = x01.shape[0]

    def u(*shape):
        return torch.rand(*shape, generator=generator).to(x01.device)

    gain = 1.0 + (u(n, 3, 1, 1) * 2 - 1) * 1.2 * strength
    offset = (u(n, 3, 1, 1) * 2 - 1) * 0.3 * strength
    haze = u(n, 1, 1, 1) * strength
    air = 0.45 + 0.4 * u(n, 3, 1, 1)
    gamma = torch.exp((u(n, 1, 1, 1) * 2 - 1) * 1.1 * strength)
    x = (x01 * gain + offset).clamp(0.0, 1.0).pow(gamma)
    return (x * (1 - haze) + air * haze).clamp(0.0, 1.0)


@dataclass(frozen=True)
class FeatureRanker:
    """The cheap baseline: ridge regression of a tile's statistics on its cluster's tier index."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    std: np.ndarray
    low: float
    high: float
    px: int = 64
    texture_px: int = 0

    def score(self, images: np.ndarray) -> np.ndarray:
        """Scores in [0, 1]: the prediction scaled by the training images' 1st-99th percentile."""
        return self.score_stats(image_stats(images, self.px, texture_px=self.texture_px))

    def score_stats(self, stats: np.ndarray) -> np.ndarray:
        """:meth:`score` from the images' statistics (:func:`image_stats`, or the store's)."""
        z = (np.asarray(stats, np.float64) - self.mean) / self.std
        pred = z @ self.coef + self.intercept
        return np.clip((pred - self.low) / max(self.high - self.low, 1e-9), 0.0, 1.0)


def ridge_fit(z: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, float]:
    """(coefficients, intercept) of a ridge regression of ``y`` on standardised statistics
    ``z``: the feature ranker, and the scorer's statistics head at its start."""
    fit = Ridge(alpha=alpha).fit(z, y)
    return np.asarray(fit.coef_, float), float(fit.intercept_)


def fit_feature_ranker(
    images_by_cluster: dict[int, np.ndarray],
    rank: dict[int, float],
    *,
    alpha: float = 1.0,
    px: int = 64,
    texture_px: int = 0,
) -> FeatureRanker:
    """Fit :class:`FeatureRanker` on every image of the ranked clusters (uninhabited lowest)."""
    cs = [c for c in sorted(images_by_cluster) if c in rank and len(images_by_cluster[c])]
    if len(cs) < 2:
        raise ValueError("the feature ranker needs images of at least two ranked clusters")
    x = np.concatenate([image_stats(images_by_cluster[c], px, texture_px=texture_px) for c in cs])
    y = np.concatenate([np.full(len(images_by_cluster[c]), rank[c]) for c in cs])
    mean, std = x.mean(0), np.clip(x.std(0), 1e-9, None)
    coef, intercept = ridge_fit((x - mean) / std, y, alpha)
    pred = (x - mean) / std @ coef + intercept
    low, high = np.percentile(pred, [1, 99])
    return FeatureRanker(
        coef,
        intercept,
        mean,
        std,
        float(low),
        float(high),
        px,
        texture_px,
    )


def save_feature_ranker(ranker: FeatureRanker, path: str | os.PathLike[str]) -> None:
    """The ranker as JSON (a few dozen numbers: readable, diffable, no pickle), atomically."""
    doc = {
        "coef": ranker.coef.tolist(),
        "intercept": ranker.intercept,
        "mean": ranker.mean.tolist(),
        "std": ranker.std.tolist(),
        "low": ranker.low,
        "high": ranker.high,
        "px": ranker.px,
        "texture_px": ranker.texture_px,
        "features": list(stat_names(ranker.texture_px)),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))


def load_feature_ranker(path: str | os.PathLike[str]) -> FeatureRanker:
    """A ranker saved by :func:`save_feature_ranker`; a file of other statistics is refused."""
    doc = json.loads(Path(path).read_text())
    if doc.get("features") != list(stat_names(int(doc["texture_px"]))):
        raise ValueError(
            f"{path}: feature ranker of other statistics: re-materialise 'feature_ranker'"
        )
    return FeatureRanker(
        np.asarray(doc["coef"], float),
        float(doc["intercept"]),
        np.asarray(doc["mean"], float),
        np.asarray(doc["std"], float),
        float(doc["low"]),
        float(doc["high"]),
        int(doc["px"]),
        int(doc["texture_px"]),
    )
