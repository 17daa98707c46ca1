"""Stage-1 pretraining of a ResNet-18, as the paper's Stage1/1_pretrain.py: soft-label
cross-entropy on the labelled images plus a mean-teacher consistency loss on unlabelled tiles.

The network becomes the uninhabited filter (its 3-way head) and the scorer's initialisation
(its trunk).  Unlabelled images come in *groups of the same place*: a district tile in each of
its years, or a single cluster image.  The teacher (an exponential moving average of the student)
sees another member of the group than the student does, so the consistency loss also asks a
tile's prediction to stay the same across its years' haze and colour balance.

Images stay uint8 (:class:`ImageBatches`) and become float tensors a batch at a time: a float copy
of every unlabelled tile-year is 4x their bytes (12 GiB for 4,000 tiles x 4 years at 256 px).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models.colour_stats import augment_scene
from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    augment_geometric,
    check_images,
    choose_device,
    deterministic,
    gray3,
    images_to_tensor,
    normalise,
    seed_everything,
    turned,
)
from siscore_assets.core.models.habitation import (
    HabitationConfig,
    HabitationModel,
    recalibrate_batchnorm,
)


class ImageBatches:
    """uint8 images (one array, or several end to end) as the networks' float input, converted
    when a batch is taken: ``batches[index]`` (a slice or row numbers) is
    :func:`images_to_tensor` of those rows on the CPU, then ``then(x, index)`` when given.  The
    conversion is per image, so a batch is bit for bit the same rows of the whole set converted
    at once, without a float copy of every image.  ``rows``: the rows of the one array that make
    up the set (the images not copied).  ``len`` and ``shape[0]`` count the set's images."""

    def __init__(
        self,
        parts: Sequence[np.ndarray],
        px: int,
        *,
        rows: np.ndarray | None = None,
        grayscale: bool = False,
        normalize: str = "fixed",
        then: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
    ) -> None:
        self.parts = [check_images(p) for p in parts]
        if rows is not None and len(self.parts) != 1:
            raise ValueError("rows picks images of one array, not of several")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        n = len(self.rows) if self.rows is not None else int(self.offsets[-1])
        self.shape = (n, 3, px, px)
        self.convert = {"grayscale": grayscale, "normalize": normalize}
        self.then = then

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        idx = np.arange(len(self))[index if isinstance(index, slice) else np.asarray(index)]
        at = idx if self.rows is None else self.rows[idx]
        out = None
        for k, part in enumerate(self.parts):
            lo, hi = self.offsets[k], self.offsets[k + 1]
            mine = (at >= lo) & (at < hi)
            if not mine.any():
                continue
            x = images_to_tensor(part[at[mine] - lo], self.shape[-1], **self.convert)
            if mine.all():  # one part: the converted batch as it is
                out = x
                break
            if out is None:
                out = torch.empty((len(at), *x.shape[1:]), dtype=x.dtype)
            out[torch.from_numpy(mine)] = x
        if out is None:
            out = torch.empty((0, *self.shape[1:]))
        return out if self.then is None else self.then(out, idx)


def calibration_images(
    parts: Sequence[np.ndarray], px: int, gen: torch.Generator, grayscale: bool
) -> ImageBatches:
    """What the teacher's BatchNorm statistics are recomputed on: every image, fixed-normalised,
    and for a grayscale network each in a random dihedral view (all drawn at once from ``gen``,
    as ``augment(all images, gen, 0.0, True)`` draws them), in grayscale."""
    if not grayscale:
        return ImageBatches(parts, px)
    n = sum(len(p) for p in parts)
    rots = torch.randint(0, 4, (n,), generator=gen)
    flips = torch.randint(0, 2, (n,), generator=gen)

    def view(x: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        at = torch.from_numpy(idx)
        return normalise(gray3(turned(x, rots[at], flips[at]) * PIXEL_STD + PIXEL_MEAN))

    return ImageBatches(parts, px, then=view)


def augment(
    x: torch.Tensor, gen: torch.Generator, strength: float, grayscale: bool = False
) -> torch.Tensor:
    """rot90 / flip, then the scene augmentation, on fixed-normalised tensors (stays normalised)."""
    x = augment_geometric(x, gen)
    x01 = augment_scene(x * PIXEL_STD + PIXEL_MEAN, gen, strength)
    if grayscale:
        x01 = gray3(x01)
    return normalise(x01)


def partners(groups: np.ndarray, rng: np.random.Generator, idx: np.ndarray) -> np.ndarray:
    """For each index in ``idx``, a random *other* member of its group (itself when alone)."""
    groups = np.asarray(groups)
    out = np.array(idx, copy=True)
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    for k, i in enumerate(idx):
        others = [j for j in members[groups[i]] if j != i]
        if others:
            out[k] = others[int(rng.integers(len(others)))]
    return out


def sigmoid_rampup(progress: float) -> float:
    """The mean-teacher ramp-up exp(-5 (1 - t)^2) for t in [0, 1]."""
    t = float(np.clip(progress, 0.0, 1.0))
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student; buffers (BN statistics) copied."""
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(decay).add_(ps.detach(), alpha=1.0 - decay)
    for bt, bs in zip(teacher.buffers(), student.buffers()):
        bt.copy_(bs)


def train_pretrained(
    images: np.ndarray,
    soft_labels: np.ndarray,
    m: ModelSettings,
    *,
    unlabelled: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[HabitationModel, list[dict]]:
    """Semi-supervised ResNet-18 pretraining; returns the EMA teacher (eval mode) and per-epoch
    history (``epoch, loss, ce, consistency, accuracy``).  ``groups`` (one id per unlabelled
    image) marks images of the same place; without unlabelled images it is plain soft-label CE.
    ``m`` gives the ``pretrain_*`` fields, ``unlabelled_batch``, ``consistency_weight``,
    ``rampup_epochs``, ``ema_decay`` and ``colour_jitter``."""
    imgs = check_images(images)
    labels = np.asarray(soft_labels, dtype=np.float32)
    if labels.shape != (len(imgs), 3) or len(imgs) == 0:
        raise ValueError(f"soft_labels must be (N, 3) for N >= 1 images, got {labels.shape}")
    labels = labels / np.clip(labels.sum(axis=1, keepdims=True), 1e-8, None)
    un = check_images(unlabelled) if unlabelled is not None and len(unlabelled) else None
    grp = np.arange(len(un)) if un is not None and groups is None else groups
    px, bs = m.pretrain_px, m.pretrain_batch
    dev = choose_device(device)
    history: list[dict] = []
    with deterministic(dev.type == "cpu"):
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        cfg = HabitationConfig(input_px=px, arch="resnet18", grayscale=m.pretrain_grayscale)
        student = HabitationModel(cfg).to(dev)
        teacher = copy.deepcopy(student)
        for p in teacher.parameters():
            p.requires_grad_(False)
        x_lab = ImageBatches([imgs], px)  # uint8 kept; each batch converted when taken
        y_lab = torch.from_numpy(labels)
        x_un = ImageBatches([un], px) if un is not None else None
        n = len(x_lab)
        steps_per_epoch = max(1, n // bs)
        total = m.pretrain_epochs * steps_per_epoch
        opt = torch.optim.Adam(student.parameters(), lr=m.pretrain_lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
        step, strength, gray = 0, m.colour_jitter, m.pretrain_grayscale
        for epoch in range(m.pretrain_epochs):
            student.train()
            teacher.train()
            order = rng.permutation(n)
            sums = {"loss": 0.0, "ce": 0.0, "consistency": 0.0, "correct": 0}
            for b in range(steps_per_epoch):
                idx = torch.from_numpy(order[b * bs : (b + 1) * bs])
                xb = augment(x_lab[idx], gen, strength, gray).to(dev)
                yb = y_lab[idx].to(dev)
                logits = student(xb)
                ce = -(yb * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                cons = torch.zeros((), device=dev)
                weight = m.consistency_weight * sigmoid_rampup(
                    step / max(1.0, m.rampup_epochs * steps_per_epoch)
                )
                if x_un is not None and weight > 0:
                    ui = rng.choice(
                        len(x_un), size=min(m.unlabelled_batch, len(x_un)), replace=False
                    )
                    pi = partners(grp, rng, ui)
                    s_u = F.softmax(
                        student(augment(x_un[torch.from_numpy(ui)], gen, strength, gray).to(dev)), 1
                    )
                    with torch.no_grad():
                        t_u = F.softmax(
                            teacher(
                                augment(x_un[torch.from_numpy(pi)], gen, strength, gray).to(dev)
                            ),
                            1,
                        )
                    cons = (s_u - t_u).pow(2).sum(dim=1).mean()
                loss = ce + weight * cons
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                ema_update(teacher, student, m.ema_decay if step > steps_per_epoch else 0.9)
                step += 1
                sums["loss"] += float(loss.detach())
                sums["ce"] += float(ce.detach())
                sums["consistency"] += float(cons.detach())
                sums["correct"] += int((logits.argmax(1) == yb.argmax(1)).sum())
            history.append(
                {
                    "epoch": epoch,
                    "loss": sums["loss"] / steps_per_epoch,
                    "ce": sums["ce"] / steps_per_epoch,
                    "consistency": sums["consistency"] / steps_per_epoch,
                    "accuracy": sums["correct"] / (steps_per_epoch * bs),
                }
            )
        calib = calibration_images([imgs] if un is None else [imgs, un], px, gen, gray)
        recalibrate_batchnorm(teacher, calib, batch_size=128)
    teacher.eval()
    return teacher, history
