"""Stage-1 ResNet-18 pretraining with a mean teacher: partners from another year of the same
place, and a trained network that saves and loads as the habitation model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siscore_assets.core.model_settings import ModelSettings, recipe_settings
from siscore_assets.core.models import pretraining
from siscore_assets.core.models.common import (
    check_images,
    choose_device,
    deterministic,
    images_to_tensor,
    iter_batches,
    seed_everything,
)
from siscore_assets.core.models.habitation import (
    HabitationConfig,
    HabitationModel,
    load_habitation,
    recalibrate_batchnorm,
    save_habitation,
)
from siscore_assets_tests.core.models.toys import PX, blue_images, flat_clusters


def test_partners_pick_another_year_of_the_same_place():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    rng = np.random.default_rng(0)
    out = pretraining.partners(groups, rng, np.array([0, 2, 3, 4]))
    assert out[0] == 1 and out[1] == 2 and out[2] in (4, 5) and out[3] in (3, 5)


def test_pretraining_with_mean_teacher_roundtrips(tmp_path):
    m = recipe_settings("smoke")  # 16 px, one epoch
    assert m.pretraining == "mean_teacher" and m.pretrain_px == PX
    pools = flat_clusters(3, 8)
    images = np.concatenate(list(pools.values()))
    labels = np.repeat(np.eye(3)[[0, 1, 2]][::-1], 8, axis=0)  # bright = urban
    un = blue_images(np.linspace(0, 1, 6), 9)
    model, hist = pretraining.train_pretrained(
        images, labels, m, unlabelled=un, groups=np.array([0, 0, 1, 1, 2, 2]), seed=0
    )
    assert model.config.arch == "resnet18" and len(hist) == 1
    assert np.isfinite(hist[0]["consistency"]) and model.embed_dim == 768
    path = save_habitation(model, tmp_path / "h.pt")
    again = load_habitation(path)
    x = torch.zeros(2, 3, PX, PX)
    assert torch.allclose(model(x), again(x))


def _mean_teacher_data():
    """Labelled images at 24 px (resized to the network's 16), 300 unlabelled tile-years at 16 px:
    more than a conversion chunk (256) and a calibration batch (128)."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (24, 24, 24, 3), dtype=np.uint8)
    labels = np.eye(3)[np.arange(24) % 3] * 0.8 + 0.2 / 3
    un = rng.integers(0, 256, (300, PX, PX, 3), dtype=np.uint8)
    return images, labels, un, np.arange(300) // 2


def test_unlabelled_images_are_never_one_float_tensor(monkeypatch):
    """The unlabelled tile-years (and the labelled images) stay uint8 and each step's batch is
    converted when drawn: before, every unlabelled image was held as float32 at once (4x the
    uint8: 12 GiB for the `paper` recipe's 4,000 tiles x 4 years at 256 px; found by review)."""
    images, labels, un, groups = _mean_teacher_data()
    m = recipe_settings("smoke")
    built, real = [], torch.cat

    def cat(tensors, *args, **kwargs):
        out = real(tensors, *args, **kwargs)
        if out.dim() == 4:
            built.append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch, "cat", cat)
    pretraining.train_pretrained(images[:8], labels[:8], m, unlabelled=un, groups=groups)
    assert built == []


@pytest.mark.parametrize("grayscale", [False, True])
def test_batches_converted_when_drawn_train_exactly_as_before(grayscale):
    """Same seed, same numbers: the weights, BatchNorm statistics and history are bit for bit
    those of the earlier code, which converted every image once, up front (`make nk`'s numbers
    must not move)."""
    images, labels, un, groups = _mean_teacher_data()
    m = recipe_settings("smoke", pretrain_epochs=2, pretrain_grayscale=grayscale)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [
            train(images, labels, m, unlabelled=un, groups=groups, seed=1)
            for train in (pretraining.train_pretrained, _train_pretrained_before)
        ]
    finally:
        torch.set_num_threads(threads)
    (new, new_hist), (old, old_hist) = runs
    assert new_hist == old_hist and len(new_hist) == 2
    for (k, a), b in zip(new.state_dict().items(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    again, _ = pretraining.train_pretrained(images, labels, m, seed=1)  # without unlabelled
    before, _ = _train_pretrained_before(images, labels, m, seed=1)
    for a, b in zip(again.state_dict().values(), before.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_image_batches_equal_the_whole_set_converted_at_once():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 20, 20, 3), dtype=np.uint8)
    whole = images_to_tensor(np.concatenate([a, b]), 12, grayscale=True, normalize="per_image")
    batches = pretraining.ImageBatches([a, b], 12, grayscale=True, normalize="per_image")
    assert len(batches) == 12 and batches.shape == (12, 3, 12, 12)
    for index in (slice(3, 9), np.array([11, 0, 6, 4]), torch.tensor([2]), slice(0, 0)):
        assert torch.equal(batches[index], whole[index])
    rows = np.array([4, 1, 1])
    picked = pretraining.ImageBatches([a], 12, rows=rows)
    assert torch.equal(picked[0:3], images_to_tensor(a[rows], 12))


def _train_pretrained_before(
    images: np.ndarray,
    soft_labels: np.ndarray,
    m: ModelSettings,
    *,
    unlabelled: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[HabitationModel, list[dict]]:
    """`train_pretrained` as it was: every image converted up front into one float tensor."""
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
        x_lab = torch.cat([images_to_tensor(imgs[sl], px) for sl in iter_batches(len(imgs), 256)])
        y_lab = torch.from_numpy(labels)
        x_un = (
            torch.cat([images_to_tensor(un[sl], px) for sl in iter_batches(len(un), 256)])
            if un is not None
            else None
        )
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
                xb = pretraining.augment(x_lab[idx], gen, strength, gray).to(dev)
                yb = y_lab[idx].to(dev)
                logits = student(xb)
                ce = -(yb * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                cons = torch.zeros((), device=dev)
                weight = m.consistency_weight * pretraining.sigmoid_rampup(
                    step / max(1.0, m.rampup_epochs * steps_per_epoch)
                )
                if x_un is not None and weight > 0:
                    ui = rng.choice(
                        len(x_un), size=min(m.unlabelled_batch, len(x_un)), replace=False
                    )
                    pi = pretraining.partners(grp, rng, ui)
                    s_u = F.softmax(
                        student(
                            pretraining.augment(x_un[torch.from_numpy(ui)], gen, strength, gray).to(
                                dev
                            )
                        ),
                        1,
                    )
                    with torch.no_grad():
                        t_u = F.softmax(
                            teacher(
                                pretraining.augment(
                                    x_un[torch.from_numpy(pi)], gen, strength, gray
                                ).to(dev)
                            ),
                            1,
                        )
                    cons = (s_u - t_u).pow(2).sum(dim=1).mean()
                loss = ce + weight * cons
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                pretraining.ema_update(
                    teacher, student, m.ema_decay if step > steps_per_epoch else 0.9
                )
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
        calib = x_lab if x_un is None else torch.cat([x_lab, x_un])
        if gray:
            calib = pretraining.augment(calib, gen, 0.0, True)
        recalibrate_batchnorm(teacher, calib, batch_size=128)
    teacher.eval()
    return teacher, history
