"""The seeds fused into one pass score exactly as :func:`scorer.score_images` does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siscore_assets.core.models import colour_stats, fused_scoring
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets_tests.core.models.toys import toy_images


def tiny_ensemble(seeds=(0, 1, 2), **cfg) -> scorer_lib.ScorerModel | scorer_lib.ScorerEnsemble:
    """Seeded random scorers with non-trivial statistics scaling (no training needed)."""
    config = scorer_lib.ScorerConfig(
        **{"input_px": 8, "colour_stats": True, "texture_px": 32, **cfg}
    )
    members = []
    for s in seeds:
        torch.manual_seed(s)
        m = scorer_lib.ScorerModel(config)
        k = len(m.stat_mean)
        m.stat_mean.copy_(torch.rand(k))
        m.stat_std.copy_(torch.rand(k) + 0.5)
        members.append(m.eval())
    return scorer_lib.ensemble(members)


def images(n: int = 12, px: int = 32) -> np.ndarray:
    return toy_images(np.linspace(0, 1, n), seed=3, px=px)


@pytest.mark.parametrize(
    "seeds, cfg",
    [
        ((0, 1, 2), {}),
        ((4,), {}),
        ((0, 1), {"colour_stats": False, "texture_px": 0}),
        ((0, 1), {"grayscale": True}),
        ((0, 1), {"views": 8}),
        ((3,), {"colour_stats": False, "texture_px": 0, "views": 4}),
    ],
)
def test_fused_scores_are_the_landed_scores(seeds, cfg, monkeypatch):
    monkeypatch.setattr(fused_scoring, "STAT_CHUNK", 2)  # statistics in chunks: same numbers
    model = tiny_ensemble(seeds, **cfg)
    imgs = images(px=model.config.tensor_px)
    landed = scorer_lib.score_images(model, imgs, batch_size=5)
    fused = fused_scoring.score_images_fused(model, imgs, batch_size=5)
    np.testing.assert_array_equal(fused, landed)


def test_fast_texture_statistics_are_the_same_numbers():
    x = torch.rand(3, 3, 40, 40)
    fine = x.reshape(len(x), -1)
    assert torch.equal(
        colour_stats.upper_decile(fine), fine.kthvalue(round(0.9 * fine.shape[1]), dim=1).values
    )


def test_optimised_networks_move_scores_by_less_than_1e6_and_keep_ranks():
    model = tiny_ensemble()
    imgs = images(24)
    exact = fused_scoring.score_images_fused(model, imgs)
    fast = fused_scoring.score_images_fused(model, imgs, nets=fused_scoring.optimised_nets(model))
    assert np.abs(fast - exact).max() <= 1e-6
    assert (np.argsort(fast, kind="stable") == np.argsort(exact, kind="stable")).all()
