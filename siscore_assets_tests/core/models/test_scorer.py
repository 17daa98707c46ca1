"""Scorer: scores in [0, 1], learns a toy ordering, deterministic, save/load, loss pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from siscore_assets.core.models.common import average_ranks
from siscore_assets.core.models.scorer import (
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
        clusters,
        PATHS,
        steps=40,
        per_tier=8,
        lr=2e-3,
        alpha_linearity=1.0,
        seed=3,
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
    assert average_ranks(targets).tolist() == [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]
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
    clusters = {
        0: np.zeros((2, 8, 8, 3), np.uint8),
        1: np.zeros((0, 8, 8, 3), np.uint8),
        2: np.zeros((3, 8, 8, 3), np.uint8),
    }
    assert _prepare_paths(clusters, [[[0], [1], [2, 9]]]) == [[[0], [2]]]
    with pytest.raises(ValueError):
        _prepare_paths(clusters, [[[0], [1]]])


# ---- real-imagery options: per-image normalisation, per-cluster batches, selection, seeds ----


def test_per_image_normalisation_removes_global_brightness_and_contrast():
    from siscore_assets.core.models.common import images_to_tensor

    imgs = toy_images(np.linspace(0, 1, 4), seed=5)
    shifted = np.clip(imgs.astype(np.float64) * 0.7 + 30, 0, 255).astype(
        np.uint8
    )  # hazier, darker year
    a = images_to_tensor(imgs, PX, normalize="per_image")
    b = images_to_tensor(shifted, PX, normalize="per_image")
    fixed_gap = (images_to_tensor(imgs, PX) - images_to_tensor(shifted, PX)).abs().mean()
    assert (a - b).abs().mean() < 0.05 < 0.2 < fixed_gap  # uint8 rounding is all that is left
    with pytest.raises(ValueError, match="normalize"):
        images_to_tensor(imgs, PX, normalize="zscore")


def test_cluster_sampling_holdout_selection_and_seed_ensemble(tmp_path):
    from siscore_assets.core.models.scorer import (
        ScorerEnsemble,
        cluster_order_spearman,
        train_scorer_ensemble,
    )

    clusters = toy_clusters(5, 24, seed=1)
    train = {c: v[:18] for c, v in clusters.items()}
    held = {c: v[18:] for c, v in clusters.items()}
    rank = {0: 0.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 3.0}
    kw = dict(
        steps=12,
        per_tier=3,
        lr=2e-3,
        alpha_linearity=1.0,
        input_px=PX,
        normalize="per_image",
        sampling="cluster",
        holdout=held,
        cluster_rank=rank,
        eval_every=4,
    )
    model, hists = train_scorer_ensemble(train, PATHS, seeds=[0, 1], **kw)
    assert isinstance(model, ScorerEnsemble) and len(model.members) == 2
    for hist in hists:
        evals = [h for h in hist if "heldout_spearman" in h]
        assert [h["step"] for h in evals] == [3, 7, 11]
        chosen = [h for h in hist if h.get("selected")]
        assert len(chosen) == 1 and chosen[0]["heldout_spearman"] == max(
            h["heldout_spearman"] for h in evals
        )
    rho, means = cluster_order_spearman(model, held, rank)
    assert set(means) == set(rank) and -1.0 <= rho <= 1.0
    scores = score_images(model, held[4])
    member_mean = np.mean([score_images(m, held[4]) for m in model.members], axis=0)
    assert np.allclose(scores, member_mean) and ((scores >= 0) & (scores <= 1)).all()
    path = save_scorer(model, tmp_path / "ens.pt")
    again = load_scorer(path)
    assert isinstance(again, ScorerEnsemble) and again.config.normalize == "per_image"
    assert np.array_equal(score_images(again, held[4]), scores)
    # Same seeds -> the same ensemble, bit for bit (CPU).
    model2, _ = train_scorer_ensemble(train, PATHS, seeds=[0, 1], **kw)
    assert np.array_equal(score_images(model2, held[4]), scores)


def test_cluster_sampling_draws_every_cluster_of_a_tier():
    clusters = toy_clusters(5, 10, seed=2)
    with pytest.raises(ValueError, match="sampling"):
        train_scorer(clusters, PATHS, steps=1, sampling="random", input_px=PX)
    _, hist = train_scorer(
        clusters,
        [[[0], [1], [2, 3], [4]]],
        steps=2,
        per_tier=2,
        input_px=PX,
        sampling="cluster",
        alpha_linearity=0.0,
    )
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
