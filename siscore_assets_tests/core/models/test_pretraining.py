"""Stage-1 ResNet-18 pretraining with a mean teacher: partners from another year of the same
place, and a trained network that saves and loads as the habitation model."""

from __future__ import annotations

import numpy as np
import torch

from siscore_assets.core.model_settings import recipe_settings
from siscore_assets.core.models import pretraining
from siscore_assets.core.models.habitation import load_habitation, save_habitation
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
