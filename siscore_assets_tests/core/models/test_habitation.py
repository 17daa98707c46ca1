"""Habitation encoder: learns an easy separable set, predicts probabilities, embeds, round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.models.common import images_to_tensor
from siscore_assets.core.models.habitation import (
    embed,
    load_habitation,
    predict_habitation,
    save_habitation,
    train_habitation,
)


def toy_habitation(n: int, px: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Urban: grey with bright blocks; rural: green/yellow stripes; uninhabited: dark noise."""
    rng = np.random.default_rng(seed)
    cls = np.arange(n) % 3
    imgs = np.empty((n, px, px, 3), dtype=np.float64)
    yy, xx = np.mgrid[0:px, 0:px]
    for i, c in enumerate(cls):
        noise = rng.normal(0, 12, (px, px, 3))
        if c == 0:
            base = np.full((px, px, 3), 120.0)
            blocks = (yy // 4 + xx // 4) % 2 == 0
            base[blocks] = 210.0
        elif c == 1:
            base = np.zeros((px, px, 3))
            stripe = (xx // 3) % 2 == 0
            base[...] = (90, 150, 60)
            base[stripe] = (170, 170, 80)
        else:
            base = np.zeros((px, px, 3))
            base[...] = (30, 70, 35)
        imgs[i] = base + noise
    labels = np.full((n, 3), 0.05)
    labels[np.arange(n), cls] = 0.9
    return np.clip(imgs, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def trained():
    imgs, labels = toy_habitation(120, 32, seed=0)
    model, hist = train_habitation(imgs, labels, epochs=4, seed=1, batch_size=32, input_px=32)
    return model, hist


def test_learns_separable_toy_set(trained):
    model, hist = trained
    assert len(hist) == 4
    assert {"epoch", "loss", "accuracy"} <= set(hist[0])
    assert hist[-1]["loss"] < hist[0]["loss"]
    test_imgs, test_labels = toy_habitation(60, 32, seed=99)
    proba = predict_habitation(model, test_imgs)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    acc = (proba.argmax(1) == test_labels.argmax(1)).mean()
    assert acc > 0.9


def test_embed_shape_and_dtype(trained):
    model, _ = trained
    imgs, _ = toy_habitation(9, 32, seed=3)
    feats = embed(model, imgs, batch_size=4)
    assert feats.shape == (9, model.embed_dim)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert embed(model, imgs[:0]).shape == (0, model.embed_dim)


def test_large_tiles_are_resized(trained):
    model, _ = trained
    big, labels = toy_habitation(6, 128, seed=5)
    proba = predict_habitation(model, big)
    assert proba.shape == (6, 3)
    assert images_to_tensor(big, 32).shape == (6, 3, 32, 32)


def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    imgs, _ = toy_habitation(12, 32, seed=7)
    path = save_habitation(model, tmp_path / "sub" / "hab.pt")
    again = load_habitation(path)
    np.testing.assert_array_equal(predict_habitation(model, imgs), predict_habitation(again, imgs))
    np.testing.assert_array_equal(embed(model, imgs), embed(again, imgs))


def test_same_seed_same_model():
    imgs, labels = toy_habitation(30, 16, seed=2)
    a, ha = train_habitation(imgs, labels, epochs=1, seed=4, batch_size=16, input_px=16)
    b, hb = train_habitation(imgs, labels, epochs=1, seed=4, batch_size=16, input_px=16)
    assert ha == hb
    np.testing.assert_array_equal(predict_habitation(a, imgs), predict_habitation(b, imgs))


def test_rejects_bad_input():
    imgs, labels = toy_habitation(6, 16, seed=0)
    with pytest.raises(ValueError):
        train_habitation(imgs.astype(np.float32), labels, epochs=1, seed=0)
    with pytest.raises(ValueError):
        train_habitation(imgs, labels[:, :2], epochs=1, seed=0)


def test_stage1_sizes_and_counts_follow_the_pretraining_field():
    from siscore_assets.core.model_settings import ModelSettings, recipe_settings
    from siscore_assets.core.models import stage1

    small = ModelSettings(pretrain_px=24)
    assert small.pretraining == "supervised" and stage1.pretrain_image_px(small) == 24
    cpu = recipe_settings("cpu")  # mean teacher: at least the scorer's tensor size
    assert stage1.uses_mean_teacher(cpu)
    assert stage1.pretrain_image_px(cpu) == max(cpu.pretrain_px, cpu.tensor_px) == 256
    _, labels = toy_habitation(7, 8, seed=0)
    assert stage1.majority_counts(labels) == {"urban": 3, "rural": 2, "uninhabited": 2}


def test_stage1_supervised_training_is_the_small_cnn_bit_for_bit():
    from siscore_assets.core.model_settings import ModelSettings
    from siscore_assets.core.models import stage1
    from siscore_assets.core.models.habitation import evaluate_habitation

    imgs, labels = toy_habitation(30, 16, seed=2)
    m = ModelSettings(pretrain_px=16, pretrain_epochs=2, seed=3)
    train, held = np.arange(24), np.arange(24, 30)
    out = stage1.train_habitation_model(imgs, labels, train, held, m)
    ref, hist = train_habitation(imgs[train], labels[train], epochs=2, seed=3, input_px=16)
    assert out.history == hist and out.details == {}
    assert out.heldout == evaluate_habitation(ref, imgs[held], labels[held])
    for a, b in zip(out.model.state_dict().values(), ref.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert stage1.train_habitation_model(imgs, labels, train, held[:0], m).heldout == {}
