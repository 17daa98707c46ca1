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
    base = dict(
        pretrain_px=PX,
        pretrain_epochs=1,
        pretrain_batch=8,
        input_px=PX,
        texture_px=2 * PX,
        steps=3,
        per_cluster=3,
        eval_every=1,
        consistency_batch=4,
        seeds=(0,),
    )
    return recipes.get_recipe("cpu", **{**base, **kw})


def test_recipes_named_and_overridable():
    assert (
        recipes.get_recipe("paper").input_px == 256
        and recipes.get_recipe("paper").rank_lambda == 30.0
    )
    assert recipes.get_recipe("cpu", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get_recipe("gpu-fast")
    cpu = recipes.get_recipe("cpu")
    for ok in (None, 256, 512):
        recipes.check_store_px(cpu, ok, "XX")
    recipes.check_store_px(recipes.get_recipe("cpu", texture_px=0), 64, "XX")
    with pytest.raises(
        ValueError, match="country XX: recipe 'cpu' reads fine texture at 256 px.*store_px is 64"
    ):
        recipes.check_store_px(cpu, 64, "XX")


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
    ramp = (
        torch.linspace(0.2, 0.8, side).expand(1, 3, side, side).clone()
    )  # relief: one smooth slope
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


def test_ranker_reads_native_tiles_for_texture_and_takes_uint8():
    cfg = rank_training.RankerConfig(input_px=PX, texture_px=2 * PX)
    assert (
        cfg.tensor_px == 2 * PX
        and rank_training.RankerConfig(input_px=PX, colour_stats=False, texture_px=64).tensor_px
        == PX
    )
    model = rank_training.RankerModel(cfg).eval()
    assert model.stat_mean.shape == (len(colour_stats.stat_names(2 * PX)),)
    u8 = torch.from_numpy(toy(np.linspace(0, 1, 3), 4, px=2 * PX)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        torch.testing.assert_close(model(u8), model(rank_training.as_normalised(u8)))
    assert (
        recipes.get_recipe("cpu").tensor_px == 256 and recipes.get_recipe("paper").tensor_px == 256
    )


def test_scene_augmentation_identity_at_zero_and_in_range():
    x = torch.rand(4, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(colour_stats.augment_scene(x, gen, 0.0), x)
    y = colour_stats.augment_scene(x, gen, 0.25)
    assert y.min() >= 0 and y.max() <= 1 and not torch.allclose(x, y)


def test_feature_ranker_orders_clusters():
    pools = clusters(3, 10)
    for texture_px in (0, 2 * PX):
        ranker = colour_stats.fit_feature_ranker(
            pools, {0: 0.0, 1: 1.0, 2: 2.0}, px=PX, texture_px=texture_px
        )
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
    model, hist = pretraining.train_pretrained(
        images, labels, tiny(), unlabelled=un, groups=np.array([0, 0, 1, 1, 2, 2]), seed=0
    )
    assert (
        model.config.arch == "resnet18" and len(hist) == 1 and np.isfinite(hist[0]["consistency"])
    )
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
            pools,
            [[[0], [1], [2]]],
            tiny(),
            pretrained=pre,
            unlabelled=un,
            groups=groups,
            val=clusters(3, 4, seed=30),
            cluster_rank={0: 0.0, 1: 1.0, 2: 2.0},
            seed=seed,
        )
        assert len(hist) == 3
        assert (
            sum(h.get("selected", False) for h in hist) + hist[0].get("start_selected", False) == 1
        )
        assert all(np.isfinite(h["year_consistency"]) for h in hist)
        members.append(model)
    ens = ScorerEnsemble(members).eval()
    s = score_images(ens, toy(np.linspace(0, 1, 5), 3))
    assert s.shape == (5,) and np.all((s >= 0) & (s <= 1))
    again = load_scorer(save_scorer(ens, tmp_path / "e.pt"))
    np.testing.assert_allclose(score_images(again, toy(np.linspace(0, 1, 5), 3)), s, atol=1e-6)
    one = load_scorer(save_scorer(members[0], tmp_path / "m.pt"))
    assert isinstance(one, rank_training.RankerModel)


def standardised_by(model, pools: dict, extra: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Raw statistics of ``pools`` and ``extra``; the model's standardisation set from all of them."""
    pool_stats = {c: rank_training.pool_statistics(model, x) for c, x in pools.items()}
    extra_stats = rank_training.pool_statistics(model, extra)
    st = torch.cat([*pool_stats.values(), extra_stats])
    model.stat_mean.copy_(st.mean(0))
    model.stat_std.copy_(st.std(0).clamp_min(1e-4))
    return pool_stats, extra_stats


def test_statistics_prefit_with_year_consistency_scores_a_place_alike_across_years():
    """Two 'years' of the same places: one dimmer and shifted in colour.  The pre-fit's consistency
    term pulls a place's two years together without giving up the clusters' order."""
    pools = {
        c: torch.from_numpy(v).permute(0, 3, 1, 2).contiguous() for c, v in clusters(3, 8).items()
    }
    rank = {0: 0.0, 1: 1.0, 2: 2.0}
    levels = np.linspace(0, 1, 10)
    year_a = toy(levels, 7)
    year_b = np.clip(year_a * np.array([0.7, 0.6, 0.8]) + 20, 0, 255).astype(np.uint8)
    un = torch.from_numpy(np.concatenate([year_a, year_b])).permute(0, 3, 1, 2).contiguous()
    groups = np.concatenate([np.arange(10), np.arange(10)])
    assert rank_training.year_pairs(groups).tolist() == [[i, i + 10] for i in range(10)]

    def fitted(consistency: float):
        model = rank_training.RankerModel(rank_training.RankerConfig(input_px=PX, texture_px=PX))
        pool_stats, un_stats = standardised_by(model, pools, un)
        rank_training.init_from_ridge(model, pool_stats, rank)
        info = rank_training.prefit_statistics(
            model,
            pool_stats,
            rank,
            iterations=300,
            consistency=consistency,
            unlabelled=un_stats,
            groups=groups,
            seed=0,
        )
        with torch.no_grad():
            s = model(un).numpy()
            means = [float(model(x).mean()) for x in pools.values()]
        return info, np.abs(s[:10] - s[10:]).mean() / s.std(), means

    plain, gap_plain, means_plain = fitted(0.0)
    info, gap, means = fitted(3.0)
    assert plain["pairs"] == 0 and info["pairs"] == 10 and np.isfinite(info["consistency"])
    assert gap < 0.5 * gap_plain
    assert means[0] < means[1] < means[2] and means_plain[0] < means_plain[1] < means_plain[2]


def test_statistics_prefit_follows_the_labelled_images_order():
    """The label-order term: labelled training images (soft index 0-2) scored in the annotators' order,
    scale-free (2 (1 - Pearson) with the index's ranks)."""
    pools = {
        c: torch.from_numpy(v).permute(0, 3, 1, 2).contiguous() for c, v in clusters(3, 8).items()
    }
    levels = np.linspace(0, 1, 12)
    lab = torch.from_numpy(toy(levels, 11)).permute(0, 3, 1, 2).contiguous()
    model = rank_training.RankerModel(rank_training.RankerConfig(input_px=PX, texture_px=PX))
    pool_stats, lab_stats = standardised_by(model, pools, lab)
    rank_training.init_from_ridge(model, pool_stats, {0: 0.0, 1: 1.0, 2: 2.0})
    info = rank_training.prefit_statistics(
        model,
        pool_stats,
        {0: 0.0, 1: 1.0, 2: 2.0},
        iterations=200,
        seed=0,
        labelled=lab_stats,
        label_index=2 * levels,
        label_weight=1.0,
    )
    assert info["labelled"] == 12 and info["label_order"] < 0.5
    with torch.no_grad():
        s = model(lab).numpy()
    assert np.corrcoef(np.argsort(np.argsort(s)), np.arange(12))[0, 1] > 0.75


def test_ranker_without_stats_or_pretraining_is_deterministic():
    pools = clusters(3, 6)
    r = tiny(colour_stats=False, cnn_grayscale=True, year_consistency=0.0, rank_loss="softrank")
    a, _ = rank_training.train_ranker(pools, [[[0], [1], [2]]], r, seed=3)
    b, _ = rank_training.train_ranker(pools, [[[0], [1], [2]]], r, seed=3)
    imgs = toy(np.linspace(0, 1, 4), 1)
    np.testing.assert_array_equal(rank_training.score(a, imgs), rank_training.score(b, imgs))


def test_ranker_starts_at_the_ridge_feature_ranker():
    """Zero steps: the head is the ridge fit on the training clusters (then, by default, the statistics'
    MLP pre-fitted from it); the CNN's head weights are zero either way."""
    pools = clusters(3, 8)
    paths = [[[0], [1], [2]]]
    assert rank_training.path_ranks([[[0], [1, 2]], [[0], [2]]]) == {0: 0.0, 1: 1.0, 2: 1.0}
    for prefit in (0, 200):
        model, hist = rank_training.train_ranker(
            pools, paths, tiny(steps=0, year_consistency=0.0, stat_prefit=prefit), seed=0
        )
        cnn_part = model.head.weight.detach()[:, :512]
        stat_part = model.head.weight.detach()[:, 512:]
        assert hist == [] and float(cnn_part.abs().sum()) == 0.0
        assert (float(stat_part.abs().sum()) > 0) == (prefit > 0)
        means = [rank_training.score(model, v).mean() for v in clusters(3, 6, seed=50).values()]
        assert means[0] < means[1] < means[2]
    for competes in (False, True):
        kept, hist = rank_training.train_ranker(
            pools,
            paths,
            tiny(steps=2, lr=0.0, year_consistency=0.0, start_competes=competes),
            seed=0,
            val=clusters(3, 4, seed=30),
            cluster_rank={0: 0.0, 1: 1.0, 2: 2.0},
        )
        assert hist[0].get("start_selected") or any(h.get("selected") for h in hist)
        if not competes:  # the kept checkpoint is a trained one
            assert rank_training.selected_step(hist) >= 0 and not hist[0].get("start_selected")
    assert rank_training.selected_step([{"step": 0, "start_selected": True}, {"step": 1}]) == -1
    assert (
        rank_training.selected_step([{"step": 0}, {"step": 1, "selected": True}, {"step": 2}]) == 1
    )
    assert rank_training.selected_step([{"step": 0}, {"step": 1}]) == 1


def test_ranker_trains_on_labelled_images_and_selects_on_the_selection_images():
    """Labelled (fit) images feed the rank-training label-order term each step; the selection
    images are only scored, and the kept checkpoint is the best mean of cluster and label order."""
    pools = clusters(3, 8)
    levels = np.linspace(0, 1, 40)
    labelled = (toy(levels, 21), 2 * levels)
    sel_levels = np.linspace(0.05, 0.95, 10)
    selection = (toy(sel_levels, 22), 2 * sel_levels)
    kept, hist = rank_training.train_ranker(
        pools,
        [[[0], [1], [2]]],
        tiny(steps=4, year_consistency=0.0, label_batch=8),
        val=clusters(3, 4, seed=30),
        cluster_rank={0: 0.0, 1: 1.0, 2: 2.0},
        labelled=labelled,
        selection=selection,
        seed=0,
    )
    assert all(h["label_order"] > 0 for h in hist)
    evals = [h for h in hist if "val_selection" in h]
    assert len(evals) == 4 and all(np.isfinite(h["val_label_order"]) for h in evals)
    for h in evals:
        assert h["val_selection"] == pytest.approx(
            (h["val_cluster_order"] + h["val_label_order"]) / 2
        )
    chosen = next(h for h in hist if h.get("selected"))
    assert chosen["val_selection"] == max(h["val_selection"] for h in evals)
    off, hist_off = rank_training.train_ranker(
        pools,
        [[[0], [1], [2]]],
        tiny(steps=2, year_consistency=0.0, rank_label_order=0.0),
        labelled=labelled,
        seed=0,
    )
    assert all(h["label_order"] == 0 for h in hist_off)


def test_rank_training_can_hold_the_prefitted_statistics_still():
    """``stat_lr_scale`` 0: rank training moves the CNN and the head, never the statistics branches."""
    pools = clusters(3, 8)
    start, _ = rank_training.train_ranker(
        pools, [[[0], [1], [2]]], tiny(steps=0, year_consistency=0.0), seed=0
    )
    held, _ = rank_training.train_ranker(
        pools, [[[0], [1], [2]]], tiny(steps=3, year_consistency=0.0, stat_lr_scale=0.0), seed=0
    )
    for name in ("stats.0.weight", "stat_linear.weight"):
        torch.testing.assert_close(held.state_dict()[name], start.state_dict()[name])
    assert not torch.equal(held.state_dict()["head.weight"], start.state_dict()["head.weight"])
