"""The SimCLR benchmark's pieces on a handful of tiny synthetic images: views, loss, one seeded
training step, embeddings and the equal-weight block concatenation."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import stage1_ssl as ssl

TINY = ssl.SSLConfig(epochs=1, batch_size=6, px=16, threads=1, seed=3)


def _images(n: int = 6, px: int = 32) -> np.ndarray:
    return (np.random.default_rng(0).random((n, px, px, 3)) * 255).astype(np.uint8)


def test_views_are_seeded_crops_in_range():
    x = ssl._to_float(_images())
    a = ssl.augment(x, TINY, torch.Generator().manual_seed(1))
    b = ssl.augment(x, TINY, torch.Generator().manual_seed(1))
    c = ssl.augment(x, TINY, torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 16, 16)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # no jitter, whole-image crop: a flat image stays that flat colour whatever the rotation
    flat = torch.full((2, 3, 32, 32), 0.25)
    plain = ssl.SSLConfig(px=16, min_scale=1.0, jitter_p=0.0)
    out = ssl.augment(flat, plain, torch.Generator().manual_seed(0))
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-5)
    # a zero hue turn is the identity
    img = torch.rand(2, 3, 4, 4)
    assert torch.allclose(ssl._hue_shift(img, torch.zeros(2)), img, atol=1e-5)


def test_nt_xent_prefers_matching_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 5, generator=g)
    same = ssl.nt_xent(z, z, 0.2)
    other = ssl.nt_xent(z, torch.randn(8, 5, generator=g), 0.2)
    assert same < other
    assert same.ndim == 0


def test_one_training_step_is_deterministic_and_embeds_normalised():
    images = _images()
    m1, hist = ssl.train_ssl(images, TINY, log=lambda _: None)
    m2, _ = ssl.train_ssl(images, TINY, log=lambda _: None)
    assert len(hist) == 1 and np.isfinite(hist[0]["loss"])
    e1, e2 = ssl.embed(m1, images, TINY.px), ssl.embed(m2, images, TINY.px)
    assert e1.shape == (6, 512)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, atol=1e-6)
    fresh = ssl.SSLEncoder(TINY.proj_dim)
    assert not torch.equal(fresh.backbone.conv1.weight, m1.backbone.conv1.weight)


def test_equal_blocks_gives_each_block_as_many_columns():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 30)), rng.normal(size=(40, 4)) * 100
    x = ssl.equal_blocks(a, b, seed=0)
    assert x.shape == (40, 8)
    np.testing.assert_allclose(x[:, 4:].std(0), 1.0, atol=1e-9)
