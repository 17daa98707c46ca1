"""Stage 1 pre-training: a small CNN that tells urban / rural / uninhabited tiles apart.

The paper separates uninhabited terrain (most of the country) before clustering so k-means
spends its clusters on places people live.  The same network's pooled features are the
embedding that Stage 1 clusters: a habitation classifier must learn built-up texture,
field patterns and vegetation, which is what separates development levels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18

from siscore_assets.core.models.common import (
    augment_geometric,
    augment_photometric,
    check_images,
    choose_device,
    deterministic,
    images_to_tensor,
    iter_batches,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)

CLASSES: tuple[str, str, str] = ("urban", "rural", "uninhabited")
UNINHABITED_AT = 0.5  # P(uninhabited) from which the filter calls a tile uninhabited
_KIND = "siscore.habitation"


@dataclass(frozen=True)
class HabitationConfig:
    """Everything needed to rebuild the network and preprocess images the same way."""

    input_px: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 256)
    n_classes: int = 3
    normalize: str = (
        "fixed"  # or "per_image": each tile standardised, so scene colour/haze matter less
    )
    arch: str = (
        "small"  # or "resnet18": torchvision ResNet-18 (no downloaded weights), see pretraining.py
    )
    grayscale: bool = False  # luminance in all three channels (the paper's pretraining)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class HabitationModel(nn.Module):
    """Four stride-2 conv stages -> global average pool -> 3 logits.

    Small on purpose: it must train in seconds on two CPU cores.  ``features`` concatenates
    the pooled last two stages (mid-level texture + high-level layout) for clustering.
    """

    def __init__(self, config: HabitationConfig | None = None) -> None:
        super().__init__()
        self.config = config or HabitationConfig()
        if self.config.arch not in ("small", "resnet18"):
            raise ValueError(f"arch must be 'small' or 'resnet18', got {self.config.arch!r}")
        if self.config.arch == "resnet18":
            self.net = resnet18(weights=None, num_classes=self.config.n_classes)
            return
        widths = tuple(self.config.widths)
        chans = (3, *widths)
        self.stages = nn.ModuleList(_block(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.head = nn.Linear(widths[-1], self.config.n_classes)

    @property
    def embed_dim(self) -> int:
        if self.config.arch == "resnet18":
            return 256 + 512
        w = tuple(self.config.widths)
        return w[-1] + (w[-2] if len(w) > 1 else 0)

    def _forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.config.arch == "resnet18":
            n = self.net
            x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
            l3 = n.layer3(n.layer2(n.layer1(x)))
            return [l3, n.layer4(l3)]
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.arch == "resnet18":
            return self.net(x)
        last = self._forward_stages(x)[-1]
        return self.head(last.mean(dim=(2, 3)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        outs = self._forward_stages(x)
        pooled = [o.mean(dim=(2, 3)) for o in outs[-2:]]
        return torch.cat(pooled, dim=1)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_habitation(
    images: np.ndarray,
    soft_labels: np.ndarray,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    input_px: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    device: str | torch.device | None = None,
    normalize: str = "fixed",
) -> tuple[HabitationModel, list[dict]]:
    """Fit the habitation classifier with soft-label cross-entropy.

    Soft labels (urban, rural, uninhabited shares) carry mixed tiles honestly instead of
    forcing a hard class.  Augmentation: random rot90/flips and mild photometric jitter.
    Adam with a cosine learning-rate decay.  Returns the model (eval mode) and one history
    dict per epoch: ``epoch, loss, accuracy`` (argmax agreement with the soft label).
    """
    imgs = check_images(images)
    labels = np.asarray(soft_labels, dtype=np.float32)
    if labels.shape != (imgs.shape[0], 3):
        raise ValueError(f"soft_labels must be (N, 3), got {labels.shape}")
    if imgs.shape[0] == 0:
        raise ValueError("no training images")
    labels = labels / np.clip(labels.sum(axis=1, keepdims=True), 1e-8, None)

    dev = choose_device(device)
    history: list[dict] = []
    with deterministic(dev.type == "cpu"):
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = HabitationModel(HabitationConfig(input_px=input_px, normalize=normalize)).to(dev)
        x_all = images_to_tensor(imgs, input_px, normalize=normalize)  # preprocess once, on CPU
        y_all = torch.from_numpy(labels)
        n = x_all.shape[0]
        steps_per_epoch = max(1, math.ceil(n / batch_size))
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        for epoch in range(epochs):
            model.train()
            order = torch.from_numpy(rng.permutation(n))
            tot_loss, tot_correct = 0.0, 0
            for sl in iter_batches(n, batch_size):
                idx = order[sl]
                if idx.numel() < 2:  # BatchNorm needs two samples; drop a lone straggler
                    continue
                xb = augment_geometric(x_all[idx], gen)
                xb = augment_photometric(xb, gen, brightness=0.05, contrast=0.1).to(dev)
                yb = y_all[idx].to(dev)
                logits = model(xb)
                loss = -(yb * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot_loss += float(loss.detach()) * idx.numel()
                tot_correct += int((logits.argmax(1) == yb.argmax(1)).sum())
            history.append({"epoch": epoch, "loss": tot_loss / n, "accuracy": tot_correct / n})
        recalibrate_batchnorm(model, x_all, batch_size=max(batch_size, 128))
    model.eval()
    return model, history


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x_all: torch.Tensor, batch_size: int = 128) -> None:
    """Recompute BatchNorm statistics as exact averages over the (un-augmented) training set.

    With few optimiser steps (small countries, quick configs) the running averages have not
    converged and eval-mode predictions collapse; "precise BN" fixes that at the cost of one
    forward pass.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average = exact mean over batches
    model.train()
    dev = _model_device(model)
    for sl in iter_batches(x_all.shape[0], batch_size):
        model(x_all[sl].to(dev))
    for bn, m in zip(bns, saved):
        bn.momentum = m


@torch.inference_mode()
def _run(model: HabitationModel, images: np.ndarray, batch_size: int, what: str) -> np.ndarray:
    imgs = check_images(images)
    model.eval()
    dev = _model_device(model)
    px = model.config.input_px
    out = []
    for sl in iter_batches(imgs.shape[0], batch_size):
        x = images_to_tensor(
            imgs[sl],
            px,
            device=dev,
            normalize=model.config.normalize,
            grayscale=model.config.grayscale,
        )
        if what == "proba":
            out.append(F.softmax(model(x), dim=1).cpu())
        else:
            out.append(model.features(x).cpu())
    if not out:
        dim = 3 if what == "proba" else model.embed_dim
        return np.zeros((0, dim), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def predict_habitation(
    model: HabitationModel, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """(N, 3) probabilities in ``CLASSES`` order; rows sum to 1."""
    return _run(model, images, batch_size, "proba")


def embed(model: HabitationModel, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, D) float32 pooled features of the last two stages, the Stage-1 clustering input."""
    return _run(model, images, batch_size, "features")


def save_habitation(model: HabitationModel, path: str | Path, *, name: str | None = None) -> Path:
    """Write weights + config to ``path`` (``name``: the file's final name when ``path`` is a
    staged temporary one: :func:`common.save_checkpoint`)."""
    cfg = asdict(model.config)
    cfg["widths"] = list(cfg["widths"])
    return save_checkpoint(path, _KIND, cfg, model.state_dict(), name=name)


def load_habitation(path: str | Path, device: str | torch.device | None = None) -> HabitationModel:
    """Rebuild a model written by :func:`save_habitation` (eval mode, on ``device``)."""
    cfg, state = load_checkpoint(path, _KIND)
    cfg["widths"] = tuple(cfg["widths"])
    model = HabitationModel(HabitationConfig(**cfg))
    model.load_state_dict(state)
    return model.to(choose_device(device)).eval()


def evaluate_habitation(
    model: HabitationModel, images: np.ndarray, soft_labels: np.ndarray
) -> dict[str, float]:
    """Held-out accuracy (argmax vs majority vote), soft cross-entropy, and the uninhabited
    filter's precision / recall (P(uninhabited) >= 0.5 vs majority uninhabited)."""
    labels = np.asarray(soft_labels, dtype=np.float64)
    if len(labels) == 0:
        return {
            "accuracy": float("nan"),
            "cross_entropy": float("nan"),
            "uninhabited_precision": float("nan"),
            "uninhabited_recall": float("nan"),
        }
    probs = predict_habitation(model, images).astype(np.float64)
    truth = labels.argmax(axis=1)
    pred_u = probs[:, 2] >= 0.5
    true_u = truth == 2
    return {
        "accuracy": float((probs.argmax(axis=1) == truth).mean()),
        "cross_entropy": float(-(labels * np.log(np.clip(probs, 1e-7, 1.0))).sum(axis=1).mean()),
        "uninhabited_precision": float((pred_u & true_u).sum() / max(1, pred_u.sum())),
        "uninhabited_recall": float((pred_u & true_u).sum() / max(1, true_u.sum())),
    }


def habitation_columns(probs: np.ndarray) -> dict[str, np.ndarray]:
    """The `habitation` columns of tiles (beside their ids): class probabilities, inhabited when
    P(uninhabited) < 0.5, urban when inhabited and P(urban) >= P(rural)."""
    probs = np.asarray(probs)
    inhabited = probs[:, 2] < UNINHABITED_AT
    return {
        "p_urban": probs[:, 0],
        "p_rural": probs[:, 1],
        "p_uninhabited": probs[:, 2],
        "inhabited": inhabited,
        "urban": inhabited & (probs[:, 0] >= probs[:, 1]),
    }


def habitation_table(index: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """The `habitation` rows of a small set of tiles (``index``: their `patches` rows); the
    asset writes a country-year's batch by batch with :func:`habitation_columns`."""
    frame = index[["country", "year", "tile_id", "z", "x", "y"]].copy()
    for name, values in habitation_columns(probs).items():
        frame[name] = values
    return frame
