"""Stage 3's network: the one scorer that turns a tile into siScore in [0, 1].

A ResNet-18 trunk (random init or the Stage-1 pretraining's; never downloaded weights) feeds a
linear head; optionally the tile's colour / texture statistics (:mod:`colour_stats`) feed the
head beside it, which is what lets a small real-imagery sample rank sparse rural tiles above
empty ones.  Several seeds form an ensemble whose mean is siScore.  One checkpoint format and
one scoring function (:func:`score_images`) serve every recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import resnet18

from siscore_assets.core.models.colour_stats import all_stats, stat_names
from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    check_images,
    choose_device,
    dihedral_view,
    gray3,
    images_to_tensor,
    iter_batches,
    load_checkpoint,
    normalise,
    resize_tensor,
    save_checkpoint,
    view_indices,
)
from siscore_assets.core.models.habitation import HabitationModel

KIND = "siscore.scorer/2"
STAT_HIDDEN = 16


@dataclass(frozen=True)
class ScorerConfig:
    """What rebuilds the network and preprocesses tiles identically at score time."""

    input_px: int = 32  # the CNN's input side
    grayscale: bool = False  # the CNN sees luminance (statistics keep colour)
    normalize: str = "fixed"  # see common.images_to_tensor
    colour_stats: bool = False
    texture_px: int = 0  # > 0: fine-texture statistics at this (native) size
    views: int = 1  # dihedral views averaged at score time (common.SCORE_VIEWS); 1 in training

    @property
    def tensor_px(self) -> int:
        """The side of the tensor the model takes: the CNN's input is area-resampled from it."""
        return max(self.input_px, self.texture_px) if self.colour_stats else self.input_px

    @classmethod
    def of(cls, settings) -> ScorerConfig:
        """The network a country's :class:`ModelSettings` asks for."""
        return cls(
            input_px=settings.input_px,
            grayscale=settings.grayscale,
            normalize=settings.normalize,
            colour_stats=settings.colour_stats,
            texture_px=settings.texture_px if settings.colour_stats else 0,
            views=settings.score_views,
        )


def as_normalised(x: torch.Tensor, normalize: str = "fixed") -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float as :func:`common.images_to_tensor` does
    (``fixed`` constants or ``per_image``); float tensors pass through unchanged."""
    if x.dtype != torch.uint8:
        return x
    return normalise(x.float().div_(255.0), normalize)


def raw_statistics(x: torch.Tensor, input_px: int, texture_px: int) -> torch.Tensor:
    """The colour / texture statistics of a (fixed-normalised or uint8) batch, before
    standardisation: one function for a member, the fused seeds and the stored parts."""
    x01 = as_normalised(x) * PIXEL_STD + PIXEL_MEAN
    return all_stats(x01, input_px, texture_px)


def cnn_input(x: torch.Tensor, input_px: int, normalize: str, grayscale: bool) -> torch.Tensor:
    """The CNN's input from a uint8 or normalised batch: resampled to ``input_px`` (and grey)."""
    out = resize_tensor(as_normalised(x, normalize), input_px)
    return gray3(out) if grayscale else out


class ScorerModel(nn.Module):
    """ResNet-18 trunk (+ colour statistics) -> one logit -> sigmoid score in [0, 1].

    Takes normalised float tensors, or uint8 (N, 3, H, W) ones (fixed-normalised here, so
    training pools at native size stay a quarter of the memory), at ``config.tensor_px``."""

    def __init__(self, config: ScorerConfig | None = None) -> None:
        super().__init__()
        self.config = config or ScorerConfig()
        self.net = resnet18(weights=None, num_classes=1)
        self.net.fc = nn.Identity()
        k = len(stat_names(self.config.texture_px))
        self.register_buffer("stat_mean", torch.zeros(k))
        self.register_buffer("stat_std", torch.ones(k))
        on = self.config.colour_stats
        self.stats = nn.Sequential(nn.Linear(k, STAT_HIDDEN), nn.ReLU()) if on else None
        # A direct linear term of the statistics: the ridge feature ranker's ordering at the start.
        self.stat_linear = nn.Linear(k, 1) if on else None
        self.head = nn.Linear(512 + (STAT_HIDDEN if on else 0), 1)

    def raw_stats(self, x: torch.Tensor) -> torch.Tensor:
        """The statistics of a (fixed-normalised or uint8) batch, before standardisation."""
        with torch.no_grad():
            return raw_statistics(x, self.config.input_px, self.config.texture_px)

    def standardised(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw statistics standardised with the training set's mean and sd (the head's inputs)."""
        return (raw - self.stat_mean) / self.stat_std

    def inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CNN input and the raw statistics (None without them) of a uint8 or normalised
        batch at ``config.tensor_px``."""
        cfg = self.config
        x = as_normalised(x, cfg.normalize)
        cnn_in = cnn_input(x, cfg.input_px, cfg.normalize, cfg.grayscale)
        return cnn_in, self.raw_stats(x) if self.stats is not None else None

    def head_logits(self, h: torch.Tensor, st: torch.Tensor | None) -> torch.Tensor:
        """One logit per image from the trunk's features and the standardised statistics."""
        if st is None:
            return self.head(h).squeeze(1)
        return (self.head(torch.cat([h, self.stats(st)], dim=1)) + self.stat_linear(st)).squeeze(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """One view's logits (what training ranks)."""
        cnn_in, raw = self.inputs(x)
        return self.head_logits(self.net(cnn_in), None if raw is None else self.standardised(raw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_from(*self.inputs(x))

    def score_from(
        self, cnn_in: torch.Tensor, raw: torch.Tensor | None, net: nn.Module | None = None
    ) -> torch.Tensor:
        """The score (sigmoid) from the CNN input and the raw statistics, averaged over the
        config's dihedral views of the CNN input in eval mode (one view in training; the
        statistics are read once, unturned); ``net``: this member's network frozen for
        inference, else its own."""
        views = (0,) if self.training else view_indices(self.config.views)
        net = net or self.net
        st = None if raw is None else self.standardised(raw)
        total = None
        for view in views:  # one view at a time: a view's activations, not eight
            h = net(dihedral_view(cnn_in, view) if view else cnn_in)
            score = torch.sigmoid(self.head_logits(h, st))
            total = score if total is None else total + score
        return total if len(views) == 1 else total / len(views)


class ScorerEnsemble(nn.Module):
    """Scorers trained with different seeds; siScore = the mean of their scores.

    A single rank-trained ResNet on a small sample is unstable (another seed can flip the order
    of similar tiles); averaging seeds keeps what they agree on.  ``members[i].net`` is each
    ResNet (Grad-CAM hooks go there)."""

    def __init__(self, members: Sequence[ScorerModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        cfgs = {m.config for m in members}
        if len(cfgs) != 1:
            raise ValueError(f"ensemble members disagree on preprocessing: {cfgs}")
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def from_pretrained(pretrained: HabitationModel | None, config: ScorerConfig) -> ScorerModel:
    """A scorer whose trunk is the pretrained ResNet-18's (its 3-way head dropped)."""
    model = ScorerModel(config)
    if pretrained is not None:
        if pretrained.config.arch != "resnet18":
            raise ValueError("the scorer starts from a ResNet-18 pretraining (arch 'resnet18')")
        state = {k: v for k, v in pretrained.net.state_dict().items() if not k.startswith("fc.")}
        model.net.load_state_dict(state, strict=False)
    return model


def ensemble(members: Sequence[ScorerModel]) -> ScorerModel | ScorerEnsemble:
    """One member as itself, several as their mean."""
    return members[0] if len(members) == 1 else ScorerEnsemble(members).eval()


@torch.inference_mode()
def score_images(
    model: ScorerModel | ScorerEnsemble,
    images: np.ndarray,
    batch_size: int = 256,
    *,
    uninhabited: np.ndarray | None = None,
) -> np.ndarray:
    """siScore per uint8 image, float64 in [0, 1] (eval mode, the model's own preprocessing).

    ``uninhabited`` (optional (N,) bool, the Stage-1 filter's verdict) gives those tiles exactly
    0.0 without running the network: the method treats them as one bottom cluster, and tying
    them matters for rank statistics (any tie-free order of empty tiles caps Spearman vs floor
    area near sqrt(1 - p^3) for a share p of them)."""
    imgs = check_images(images)
    out = np.zeros(imgs.shape[0], dtype=np.float64)
    todo = np.arange(imgs.shape[0])
    if uninhabited is not None:
        mask = np.asarray(uninhabited, dtype=bool)
        if mask.shape != (imgs.shape[0],):
            raise ValueError(f"uninhabited must be ({imgs.shape[0]},), got {mask.shape}")
        todo = np.flatnonzero(~mask)
    model.eval()
    dev = next(model.parameters()).device
    cfg = model.config
    for sl in iter_batches(len(todo), batch_size):
        idx = todo[sl]
        x = images_to_tensor(imgs[idx], cfg.tensor_px, device=dev, normalize=cfg.normalize)
        out[idx] = model(x).double().cpu().numpy()
    return out


def save_scorer(model: ScorerModel | ScorerEnsemble, path: str | Path) -> Path:
    """Weights + config in one file; an ensemble records its member count."""
    members = len(model.members) if isinstance(model, ScorerEnsemble) else None
    return save_checkpoint(
        path, KIND, {**asdict(model.config), "members": members}, model.state_dict()
    )


def load_scorer(
    path: str | Path, device: str | torch.device | None = None
) -> ScorerModel | ScorerEnsemble:
    """A scorer or seed ensemble written by :func:`save_scorer` (eval mode, on ``device``)."""
    try:
        cfg, state = load_checkpoint(path, KIND)
    except ValueError as exc:
        raise ValueError(f"{exc}: re-materialise 'scorer'") from None
    members = cfg.pop("members", None)
    config = ScorerConfig(**cfg)
    model: nn.Module = (
        ScorerModel(config)
        if members is None
        else ScorerEnsemble([ScorerModel(config) for _ in range(int(members))])
    )
    model.load_state_dict(state)
    # channels-last weights: faster convolutions at inference on CPU
    return model.to(choose_device(device)).to(memory_format=torch.channels_last).eval()
