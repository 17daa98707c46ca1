"""Stage-1 ResNet-18 pretraining with a mean teacher: partners from another year of the same
place, and a trained network that saves and loads as the habitation model."""

from __future__ import annotations

import numpy as np
import torch

from siscore_assets.core.model_settings import recipe_settings
from siscore_assets.core.models import pretraining
from siscore_assets.core.models.common import (
    images_to_tensor,
)
from siscore_assets.core.models.habitation import (
    load_habitation,
    save_habitation,
)
from siscore_assets_tests.core.models.spies import image_cats
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
    built = image_cats(monkeypatch)
    pretraining.train_pretrained(images[:8], labels[:8], m, unlabelled=un, groups=groups)
    assert built == []


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
