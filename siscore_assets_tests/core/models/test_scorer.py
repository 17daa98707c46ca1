"""Scorer: scores in [0, 1], learns a toy ordering, deterministic, save/load, loss pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from siscore_assets.core.models.scorer import (
    _average_ranks,
    _cutmix,
    _prepare_paths,
    load_scorer,
    save_scorer,
    score_images,
    spearman_rank_loss,
    train_scorer,
)

PX = 16


def toy_images(levels: np.ndarray, seed: int, px: int = PX) -> np.ndarray:
    """Share of bright 'built' pixels grows with level (0..1) on a noisy green background."""
    rng = np.random.default_rng(seed)
    n = len(levels)
    img = np.empty((n, px, px, 3))
    img[...] = (60, 110, 50)
    built = rng.random((n, px, px)) < levels[:, None, None] * 0.8 + 0.05
    img[built] = (200, 195, 190)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def toy_clusters(k: int, per: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for c in range(k):
        lv = np.clip(c / (k - 1) + rng.normal(0, 0.05, per), 0, 1)
        out[c] = toy_images(lv, seed + 100 + c)
    return out


PATHS = [[[0], [1], [2, 3], [4]], [[0], [1], [4]]]


@pytest.fixture(scope="module")
def trained():
    clusters = toy_clusters(5, 40, seed=0)
    model, hist = train_scorer(
        clusters, PATHS, steps=40, per_tier=8, lr=2e-3, alpha_linearity=1.0, seed=3,
        input_px=PX,
    )
    return model, hist


def test_learns_toy_ordering(trained):
    model, hist = trained
    assert len(hist) == 40
    assert {"step", "path", "loss", "rank_loss", "lin_loss", "batch_spearman"} <= set(hist[0])
    assert {h["path"] for h in hist} == {0, 1}
    levels = np.linspace(0, 1, 60)
    scores = score_images(model, toy_images(levels, seed=42))
    assert spearmanr(scores, levels).statistic > 0.8


def test_scores_in_unit_interval(trained):
    model, _ = trained
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (20, 24, 24, 3), dtype=np.uint8)  # other size gets resized
    s = score_images(model, noise, batch_size=7)
    assert s.dtype == np.float64 and s.shape == (20,)
    assert ((s >= 0) & (s <= 1)).all()
    assert score_images(model, noise[:0]).shape == (0,)


def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    imgs = toy_images(np.linspace(0, 1, 10), seed=1)
    path = save_scorer(model, tmp_path / "scorer.pt")
    again = load_scorer(path)
    assert again.config == model.config
    np.testing.assert_array_equal(score_images(model, imgs), score_images(again, imgs))


def test_deterministic_under_seed():
    clusters = toy_clusters(3, 10, seed=1)
    paths = [[[0], [1], [2]]]
    imgs = toy_images(np.linspace(0, 1, 8), seed=2)
    kw = dict(steps=3, per_tier=4, seed=11, input_px=PX, grayscale=True)
    a, ha = train_scorer(clusters, paths, **kw)
    b, hb = train_scorer(clusters, paths, **kw)
    assert ha == hb
    np.testing.assert_array_equal(score_images(a, imgs), score_images(b, imgs))
    c, _ = train_scorer(clusters, paths, **{**kw, "seed": 12})
    assert not np.array_equal(score_images(a, imgs), score_images(c, imgs))


def test_rank_loss_prefers_right_order():
    targets = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    good = torch.tensor([0.1, 0.15, 0.4, 0.45, 0.8, 0.9])
    bad = good.flip(0)
    lg = spearman_rank_loss(good, targets, 0.01)
    lb = spearman_rank_loss(bad, targets, 0.01)
    assert lg < 0.1 < lb
    assert _average_ranks(targets).tolist() == [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]
    good.requires_grad_(True)
    spearman_rank_loss(good, targets, 0.5).backward()
    assert torch.isfinite(good.grad).all()


def test_cutmix_lambda_is_area_share():
    gen = torch.Generator().manual_seed(0)
    a = torch.zeros(16, 1, 10, 10)
    b = torch.ones(16, 1, 10, 10)
    mixed, lam = _cutmix(a, b, gen)
    np.testing.assert_allclose(1 - mixed.mean(dim=(1, 2, 3)).numpy(), lam.numpy(), atol=1e-6)
    assert ((lam > 0) & (lam < 1)).all()


def test_paths_skip_missing_clusters():
    clusters = {0: np.zeros((2, 8, 8, 3), np.uint8), 1: np.zeros((0, 8, 8, 3), np.uint8),
                2: np.zeros((3, 8, 8, 3), np.uint8)}
    assert _prepare_paths(clusters, [[[0], [1], [2, 9]]]) == [[[0], [2]]]
    with pytest.raises(ValueError):
        _prepare_paths(clusters, [[[0], [1]]])
