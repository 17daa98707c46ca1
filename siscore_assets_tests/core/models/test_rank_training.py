"""Real-imagery recipe: ResNet-18 pretraining with a mean teacher, the rank-trained scorer with
colour statistics, the scene augmentation, the feature ranker, and the recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siscore_assets.core.models import colour_stats, pretraining, rank_training, recipes
from siscore_assets.core.models.habitation import (
    HabitationConfig,
    HabitationModel,
    load_habitation,
    save_habitation,
)
from siscore_assets.core.models.scorer import ScorerEnsemble, load_scorer, save_scorer, score_images

PX = 16


def toy(levels: np.ndarray, seed: int, px: int = PX) -> np.ndarray:
    """Brighter, bluer 'built' pixels grow with level on a green background."""
    rng = np.random.default_rng(seed)
    img = np.empty((len(levels), px, px, 3))
    img[...] = (60, 110, 50)
    built = rng.random((len(levels), px, px)) < levels[:, None, None] * 0.8 + 0.05
    img[built] = (170, 180, 200)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def clusters(k: int = 3, per: int = 8, seed: int = 0) -> dict[int, np.ndarray]:
    return {c: toy(np.full(per, c / (k - 1)), seed + c) for c in range(k)}


def tiny(**kw) -> recipes.Recipe:
    base = dict(pretrain_px=PX, pretrain_epochs=1, pretrain_batch=8, input_px=PX, steps=3, per_cluster=3,
                eval_every=1, consistency_batch=4, seeds=(0,))
    return recipes.get_recipe("cpu", **{**base, **kw})


def test_recipes_named_and_overridable():
    assert recipes.get_recipe("paper").input_px == 256 and recipes.get_recipe("paper").rank_lambda == 30.0
    assert recipes.get_recipe("cpu", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get_recipe("gpu-fast")


def test_tile_stats_see_colour_and_edges():
    x = torch.zeros(2, 3, 8, 8)
    x[0, 2] = 0.8  # blue
    x[1, :, :, ::2] = 1.0  # stripes: edges
    st = colour_stats.tile_stats(x)
    assert st.shape == (2, len(colour_stats.STAT_NAMES))
    names = colour_stats.STAT_NAMES
    assert st[0, names.index("b_share")] > 0.9
    assert st[1, names.index("edge_mean")] > st[0, names.index("edge_mean")]


def test_scene_augmentation_identity_at_zero_and_in_range():
    x = torch.rand(4, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(colour_stats.augment_scene(x, gen, 0.0), x)
    y = colour_stats.augment_scene(x, gen, 0.25)
    assert y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)


def test_feature_ranker_orders_clusters():
    pools = clusters(3, 10)
    ranker = colour_stats.fit_feature_ranker(pools, {0: 0.0, 1: 1.0, 2: 2.0}, px=PX)
    means = [ranker.score(v).mean() for v in clusters(3, 6, seed=50).values()]
    assert means[0] < means[1] < means[2]
    assert all(0 <= m <= 1 for m in means)


def test_rank_losses_prefer_the_right_order():
    y = torch.tensor([0.0, 1.0, 2.0, 2.0])
    good, bad = torch.tensor([0.1, 0.5, 0.9, 0.9]), torch.tensor([0.9, 0.5, 0.1, 0.1])
    for kind in ("pairwise", "softrank"):
        assert rank_training.rank_loss(good, y, kind) < rank_training.rank_loss(bad, y, kind)
    with pytest.raises(ValueError, match="pairwise"):
        rank_training.rank_loss(good, y, "listwise")


def test_partners_pick_another_year_of_the_same_place():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    rng = np.random.default_rng(0)
    out = pretraining.partners(groups, rng, np.array([0, 2, 3, 4]))
    assert out[0] == 1 and out[1] == 2 and out[2] in (4, 5) and out[3] in (3, 5)


def test_pretraining_with_mean_teacher_roundtrips(tmp_path):
    pools = clusters(3, 8)
    images = np.concatenate(list(pools.values()))
    labels = np.repeat(np.eye(3)[[0, 1, 2]][::-1], 8, axis=0)  # bright = urban
    un = toy(np.linspace(0, 1, 6), 9)
    model, hist = pretraining.train_pretrained(images, labels, tiny(), unlabelled=un,
                                               groups=np.array([0, 0, 1, 1, 2, 2]), seed=0)
    assert model.config.arch == "resnet18" and len(hist) == 1 and np.isfinite(hist[0]["consistency"])
    assert model.embed_dim == 768
    path = save_habitation(model, tmp_path / "h.pt")
    again = load_habitation(path)
    x = torch.zeros(2, 3, PX, PX)
    assert torch.allclose(model(x), again(x))


def test_ranker_trains_from_pretrained_and_saves_as_ensemble(tmp_path):
    pools = clusters(3, 8)
    pre = HabitationModel(HabitationConfig(input_px=PX, arch="resnet18"))
    un = toy(np.linspace(0, 1, 6), 9)
    groups = np.array(["t1", "t1", "t2", "t2", "t3", "t3"])
    members = []
    for seed in (0, 1):
        model, hist = rank_training.train_ranker(
            pools, [[[0], [1], [2]]], tiny(), pretrained=pre, unlabelled=un, groups=groups,
            val=clusters(3, 4, seed=30), cluster_rank={0: 0.0, 1: 1.0, 2: 2.0}, seed=seed)
        assert len(hist) == 3
        assert sum(h.get("selected", False) for h in hist) + hist[0].get("start_selected", False) == 1
        assert all(np.isfinite(h["year_consistency"]) for h in hist)
        members.append(model)
    ens = ScorerEnsemble(members).eval()
    s = score_images(ens, toy(np.linspace(0, 1, 5), 3))
    assert s.shape == (5,) and np.all((s >= 0) & (s <= 1))
    again = load_scorer(save_scorer(ens, tmp_path / "e.pt"))
    np.testing.assert_allclose(score_images(again, toy(np.linspace(0, 1, 5), 3)), s, atol=1e-6)
    one = load_scorer(save_scorer(members[0], tmp_path / "m.pt"))
    assert isinstance(one, rank_training.RankerModel)


def test_ranker_without_stats_or_pretraining_is_deterministic():
    pools = clusters(3, 6)
    r = tiny(colour_stats=False, cnn_grayscale=True, year_consistency=0.0, rank_loss="softrank")
    a, _ = rank_training.train_ranker(pools, [[[0], [1], [2]]], r, seed=3)
    b, _ = rank_training.train_ranker(pools, [[[0], [1], [2]]], r, seed=3)
    imgs = toy(np.linspace(0, 1, 4), 1)
    np.testing.assert_array_equal(rank_training.score(a, imgs), rank_training.score(b, imgs))


def test_ranker_starts_at_the_ridge_feature_ranker():
    """Zero steps: the head is the ridge fit on the training clusters, the CNN's weights are zero."""
    pools = clusters(3, 8)
    paths = [[[0], [1], [2]]]
    assert rank_training.path_ranks([[[0], [1, 2]], [[0], [2]]]) == {0: 0.0, 1: 1.0, 2: 1.0}
    model, hist = rank_training.train_ranker(pools, paths, tiny(steps=0, year_consistency=0.0), seed=0)
    assert hist == [] and float(model.head.weight.detach().abs().sum()) == 0.0
    means = [rank_training.score(model, v).mean() for v in clusters(3, 6, seed=50).values()]
    assert means[0] < means[1] < means[2]
    kept, hist = rank_training.train_ranker(pools, paths, tiny(steps=2, lr=0.0, year_consistency=0.0), seed=0,
                                            val=clusters(3, 4, seed=30), cluster_rank={0: 0.0, 1: 1.0, 2: 2.0})
    assert hist[0].get("start_selected") or any(h.get("selected") for h in hist)
