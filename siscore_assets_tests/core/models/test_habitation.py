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


def test_holdout_split_is_stratified_seeded_and_evaluated():
    from siscore_assets.core.models.habitation import holdout_split

    labels = np.zeros((50, 3))
    labels[:30, 0] = 1
    labels[30:45, 1] = 1
    labels[45:, 2] = 1
    tr, ho = holdout_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(tr, ho)) == 0 and len(tr) + len(ho) == 50
    assert np.bincount(labels[ho].argmax(1), minlength=3).tolist() == [6, 3, 1]
    assert np.array_equal(ho, holdout_split(labels, 0.2, seed=0)[1])
    assert len(holdout_split(labels, 0.0, seed=0)[1]) == 0


def test_label_splits_give_three_disjoint_stratified_roles_and_keep_the_holdout():
    """fit / selection / held cover every image once; held is holdout_split's, so adding a
    selection share never changes the reported held-out labels."""
    from siscore_assets.core.models.habitation import holdout_split, label_splits

    labels = np.zeros((100, 3))
    labels[:50, 0] = 1
    labels[50:80, 1] = 1
    labels[80:, 2] = 1
    fit, sel, held = label_splits(labels, 0.2, 0.25, seed=3)
    assert sorted(np.concatenate([fit, sel, held]).tolist()) == list(range(100))
    np.testing.assert_array_equal(held, holdout_split(labels, 0.2, seed=3)[1])
    assert np.bincount(labels[sel].argmax(1), minlength=3).tolist() == [10, 6, 4]
    again = label_splits(labels, 0.2, 0.25, seed=3)
    np.testing.assert_array_equal(sel, again[1])
    assert not np.array_equal(sel, label_splits(labels, 0.2, 0.25, seed=4)[1])
    fit0, sel0, held0 = label_splits(labels, 0.2, 0.0, seed=3)
    assert len(sel0) == 0 and len(fit0) == 80
