"""The colour / texture statistics of :mod:`colour_stats` that the scorer's head and the feature
ranker read (the ranker's file format is tested in test_colour_stats.py): colour and edges, fine
texture that ignores a scene's gain, the scene augmentation, and the shared ridge fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siscore_assets.core.models import colour_stats
from siscore_assets_tests.core.models.toys import PX, flat_clusters


def test_tile_stats_see_colour_and_edges():
    x = torch.zeros(2, 3, 8, 8)
    x[0, 2] = 0.8  # blue
    x[1, :, :, ::2] = 1.0  # stripes: edges
    st = colour_stats.tile_stats(x)
    assert st.shape == (2, len(colour_stats.STAT_NAMES))
    names = colour_stats.STAT_NAMES
    assert st[0, names.index("b_share")] > 0.9
    assert st[1, names.index("edge_mean")] > st[0, names.index("edge_mean")]


def test_texture_stats_ignore_scene_gain_and_smooth_relief():
    """Fine texture is on log luminance (a scene's gain cancels) and high-passed (a smooth slope of
    relief shading is not texture), so streets and roofs count and the season's light does not."""
    side = 32
    ramp = torch.linspace(0.2, 0.8, side).expand(1, 3, side, side).clone()  # one smooth slope
    blocks = torch.full((1, 3, side, side), 0.3)
    blocks[..., ::4, :] = 0.7  # a street every 4 px
    blocks[..., :, ::4] = 0.7
    st = colour_stats.texture_stats(torch.cat([ramp, blocks]))
    names = colour_stats.TEXTURE_NAMES
    assert st.shape == (2, len(names)) and colour_stats.stat_names(side)[-len(names) :] == names
    for k in ("fine3_mean", "fine3_frac", "fine7_q90"):
        assert st[1, names.index(k)] > 5 * st[0, names.index(k)] + 1e-3
    darker = colour_stats.texture_stats(blocks * 0.6)
    torch.testing.assert_close(darker, st[1:], atol=1e-5, rtol=1e-4)
    assert colour_stats.image_stats(
        np.zeros((2, side, side, 3), np.uint8), px=8, texture_px=side
    ).shape == (2, len(colour_stats.STAT_NAMES) + len(names))


def test_scene_augmentation_identity_at_zero_and_in_range():
    x = torch.rand(4, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(colour_stats.augment_scene(x, gen, 0.0), x)
    y = colour_stats.augment_scene(x, gen, 0.25)
    assert y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)


def test_ridge_fit_recovers_a_linear_order():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    y = z @ np.array([1.0, -2.0, 0.0, 0.5]) + 3.0
    coef, intercept = colour_stats.ridge_fit(z, y, alpha=1e-6)
    np.testing.assert_allclose(coef, [1.0, -2.0, 0.0, 0.5], atol=1e-4)
    assert intercept == pytest.approx(3.0, abs=1e-4)
    shrunk, _ = colour_stats.ridge_fit(z, y, alpha=1e3)
    assert np.linalg.norm(shrunk) < np.linalg.norm(coef)


@pytest.mark.parametrize("texture_px", [0, 2 * PX])
def test_feature_ranker_orders_clusters(texture_px):
    ranker = colour_stats.fit_feature_ranker(
        flat_clusters(3, 10, px=2 * PX), {0: 0.0, 1: 1.0, 2: 2.0}, px=PX, texture_px=texture_px
    )
    means = [ranker.score(v).mean() for v in flat_clusters(3, 6, seed=50, px=2 * PX).values()]
    assert means[0] < means[1] < means[2]
    assert all(0 <= m <= 1 for m in means)
    with pytest.raises(ValueError, match="at least two ranked clusters"):
        colour_stats.fit_feature_ranker(flat_clusters(3, 4), {0: 0.0}, px=PX)
