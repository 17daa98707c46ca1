"""The scorer's trainer: determinism, a learnt toy ordering, the rank losses, batches drawn along
the POG's paths, checkpoint selection, the statistics' ridge start and pre-fit, the label-order
and year-consistency terms, and the recipes' settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from siscore_assets.core.model_settings import ModelSettings, check_store_px, recipe_settings
from siscore_assets.core.models import scorer_training as st
from siscore_assets.core.models.colour_stats import ridge_fit
from siscore_assets.core.models.common import PIXEL_MEAN, PIXEL_STD, average_ranks
from siscore_assets.core.models.evaluation import scorer_cluster_fit
from siscore_assets.core.models.habitation import HabitationConfig, HabitationModel
from siscore_assets.core.models.scorer import (
    ScorerConfig,
    ScorerEnsemble,
    ScorerModel,
    ensemble,
    load_scorer,
    save_scorer,
    score_images,
)
from siscore_assets.core.models.scorer_training import TrainingInputs, train_scorer
from siscore_assets.core.ranking import cluster_order, path_ranks
from siscore_assets_tests.core.models.toys import (
    PATHS,
    PX,
    blue_images,
    flat_clusters,
    toy_clusters,
    toy_images,
)

LINE = [[[0], [1], [2]]]  # one path over three clusters
RANK = {0: 0.0, 1: 1.0, 2: 2.0}


def tiny(**kw) -> ModelSettings:
    """The ``cpu`` recipe (statistics head, cluster sampling, pairwise loss, label order, year
    consistency, selection) at toy size, started from scratch."""
    base = dict(
        from_pretrained=False,
        pretrain_px=PX,
        pretrain_epochs=1,
        pretrain_batch=8,
        input_px=PX,
        texture_px=2 * PX,
        steps=3,
        per_tier=3,
        eval_every=1,
        consistency_batch=4,
        seeds=(0,),
    )
    return recipe_settings("cpu", **{**base, **kw})


def small(**kw) -> ModelSettings:
    return recipe_settings("small", **{"input_px": PX, **kw})


def as_u8(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


# ---- the trainer on the small recipe -------------------------------------------------------


def test_learns_a_toy_ordering_with_the_small_recipe():
    m = small(steps=40, per_tier=8, lr=2e-3, alpha_linearity=1.0)
    model, hist = train_scorer(TrainingInputs(toy_clusters(5, 40, seed=0), PATHS), m, seed=3)
    assert len(hist) == 40 and not model.training
    keys = {"step", "path", "loss", "rank_loss", "label_order", "year_consistency", "lin_loss"}
    assert keys | {"batch_spearman"} <= set(hist[0])
    assert {h["path"] for h in hist} == {0, 1}
    assert all(h["lin_loss"] > 0 and h["label_order"] == h["year_consistency"] == 0 for h in hist)
    assert not any("val_selection" in h or "selected" in h for h in hist)  # nothing to select on
    levels = np.linspace(0, 1, 60)
    scores = score_images(model, toy_images(levels, seed=42))
    assert spearmanr(scores, levels).statistic > 0.8


@pytest.mark.parametrize(
    "m",
    [
        small(steps=3, per_tier=4, grayscale=True),
        tiny(colour_stats=False, grayscale=True, year_consistency=0.0, rank_loss="softrank"),
    ],
    ids=["small", "cpu-without-statistics"],
)
def test_deterministic_under_seed(m):
    data = TrainingInputs(toy_clusters(3, 10, seed=1), LINE)
    imgs = toy_images(np.linspace(0, 1, 8), seed=2)
    a, ha = train_scorer(data, m, seed=11)
    b, hb = train_scorer(data, m, seed=11)
    assert ha == hb
    np.testing.assert_array_equal(score_images(a, imgs), score_images(b, imgs))
    c, _ = train_scorer(data, m, seed=12)
    assert not np.array_equal(score_images(a, imgs), score_images(c, imgs))


# ---- loss pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softrank", "pairwise"])
def test_rank_loss_prefers_the_right_order(kind):
    targets = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    good = torch.tensor([0.1, 0.15, 0.4, 0.45, 0.8, 0.9])
    bad = good.flip(0)
    lg = st.rank_loss(good, targets, kind, strength=0.01)
    lb = st.rank_loss(bad, targets, kind, strength=0.01)
    assert lg < 0.1 < lb
    y = torch.tensor([0.0, 1.0, 2.0, 2.0])
    right, wrong = torch.tensor([0.1, 0.5, 0.9, 0.9]), torch.tensor([0.9, 0.5, 0.1, 0.1])
    assert st.rank_loss(right, y, kind) < st.rank_loss(wrong, y, kind)
    good.requires_grad_(True)
    st.rank_loss(good, targets, kind, strength=0.5).backward()
    assert torch.isfinite(good.grad).all() and good.grad.abs().sum() > 0


def test_rank_loss_ranks_ties_by_their_average_and_knows_its_kinds():
    targets = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0])
    assert average_ranks(targets).tolist() == [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]
    with pytest.raises(ValueError, match="pairwise"):
        st.rank_loss(torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.0, 1.0, 2.0]), "listwise")


def test_cutmix_lambda_is_area_share():
    gen = torch.Generator().manual_seed(0)
    a = torch.zeros(16, 1, 10, 10)
    b = torch.ones(16, 1, 10, 10)
    mixed, lam = st.cutmix(a, b, gen)
    np.testing.assert_allclose(1 - mixed.mean(dim=(1, 2, 3)).numpy(), lam.numpy(), atol=1e-6)
    assert ((lam > 0) & (lam < 1)).all()


def test_year_pairs_and_the_variance_normalised_gap():
    assert st.year_pairs(np.array(["a", "b", "a", "c", "a"])).tolist() == [[0, 2], [0, 4], [2, 4]]
    assert st.year_pairs(np.array(["a", "b"])).shape == (0, 2)
    sa, sb = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0.2, 0.4, 0.9])
    gap = st.variance_normalised_gap(sa, sb)
    assert gap > 0 and float(st.variance_normalised_gap(sa, sa)) == 0.0
    # scale-free (up to its 1e-4 floor): squeezing every score together does not lower it
    squeezed = st.variance_normalised_gap(0.5 * sa, 0.5 * sb)
    torch.testing.assert_close(squeezed, gap, rtol=0.02, atol=0)


def test_usable_paths_skip_missing_clusters():
    pools = {
        0: np.zeros((2, 8, 8, 3), np.uint8),
        1: np.zeros((0, 8, 8, 3), np.uint8),
        2: np.zeros((3, 8, 8, 3), np.uint8),
    }
    assert st.usable_paths(pools, [[[0], [1], [2, 9]]]) == [[[0], [2]]]
    with pytest.raises(ValueError, match="at least two tiers"):
        st.usable_paths(pools, [[[0], [1]]])
    with pytest.raises(ValueError, match="at least two tiers"):
        train_scorer(TrainingInputs(pools, [[[0], [1]]]), small(steps=1))


def test_uint8_tensors_and_pool_statistics():
    imgs = blue_images(np.linspace(0, 1, 5), seed=1, px=2 * PX)
    x = st.uint8_tensor(imgs, PX)
    assert x.dtype == torch.uint8 and x.shape == (5, 3, PX, PX)
    assert torch.equal(st.uint8_tensor(imgs, 2 * PX), as_u8(imgs))
    model = ScorerModel(ScorerConfig(input_px=PX, colour_stats=True, texture_px=2 * PX))
    torch.testing.assert_close(
        st.pool_statistics(model, as_u8(imgs), batch_size=2), model.raw_stats(as_u8(imgs))
    )


# ---- what each step draws --------------------------------------------------------------------


def _flat(k: int, per: int) -> dict[int, np.ndarray]:
    """Cluster c: uniform tiles of grey 30 + 40 c, so a batch row tells its cluster."""
    return {c: np.full((per, PX, PX, 3), 30 + 40 * c, np.uint8) for c in range(k)}


def _batches(monkeypatch, m: ModelSettings, paths: list) -> list[list[int]]:
    """The clusters of every image each training step draws (augmentation switched off)."""
    seen: list[list[int]] = []

    def no_augment(x, gen, m):
        grey = (x[:, 0, 0, 0] * PIXEL_STD + PIXEL_MEAN) * 255
        seen.append(((grey - 30) / 40).round().int().tolist())
        return x

    monkeypatch.setattr(st, "_augment", no_augment)
    train_scorer(TrainingInputs(_flat(5, 6), paths), m, seed=0)
    return seen


def test_cluster_sampling_draws_every_cluster_of_a_tier(monkeypatch):
    with pytest.raises(ValueError, match="sampling"):
        small(sampling="random")
    path = [[[0], [1], [2, 3], [4]]]
    m = small(steps=2, per_tier=2, alpha_linearity=0.0)
    by_cluster = _batches(monkeypatch, m.with_overrides(sampling="cluster"), path)
    assert by_cluster == [[0, 0, 1, 1, 2, 2, 3, 3, 4, 4]] * 2
    by_tier = _batches(monkeypatch, m, path)  # the tier's images pooled: 2 of clusters 2 and 3
    assert all(len(b) == 8 and b[:4] == [0, 0, 1, 1] and set(b[4:6]) <= {2, 3} for b in by_tier)
    assert all(b[6:] == [4, 4] for b in by_tier)
    capped = _batches(monkeypatch, m.with_overrides(per_tier=6, max_batch=12), path)
    assert [len(b) for b in capped] == [12, 12]  # 3 a tier: max_batch // 4 tiers


# ---- checkpoint selection and the seed ensemble ------------------------------------------------


def test_selection_keeps_the_best_validation_checkpoint_and_seeds_make_an_ensemble(tmp_path):
    pools = toy_clusters(5, 24, seed=1)
    train = {c: v[:18] for c, v in pools.items()}
    held = {c: v[18:] for c, v in pools.items()}
    rank = {0: 0.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: 3.0}
    m = small(
        steps=12,
        per_tier=3,
        lr=2e-3,
        alpha_linearity=1.0,
        normalize="per_image",
        sampling="cluster",
        eval_every=4,
        seeds=(0, 1),
    )
    data = TrainingInputs(train, PATHS, val=held, cluster_rank=rank)
    done: list[int] = []
    members, hists = st.train_scorers(data, m, on_member=lambda seed, _net: done.append(seed))
    assert done == [0, 1] and len(members) == 2
    for model, hist in zip(members, hists):
        evals = [h for h in hist if "val_selection" in h]
        assert [h["step"] for h in evals] == [3, 7, 11]
        assert all(h["val_selection"] == h["val_cluster_order"] for h in evals)  # no labels
        assert "start_val_cluster_order" in hist[0] and not hist[0].get("start_selected")
        chosen = [h for h in hist if h.get("selected")]
        assert len(chosen) == 1 and chosen[0]["val_selection"] == max(
            h["val_selection"] for h in evals
        )
        assert st.selected_entry(hist) is chosen[0]
        assert st.selected_step(hist) == chosen[0]["step"]
        # the model handed back is the kept checkpoint
        kept = cluster_order(st.cluster_means(model, held), rank)
        assert kept == pytest.approx(chosen[0]["val_cluster_order"])
    model = ensemble(members)
    assert isinstance(model, ScorerEnsemble) and model.config.normalize == "per_image"
    fit, rho = scorer_cluster_fit(model, held, rank)
    assert list(fit.columns) == ["cluster_id", "images", "mean_score", "tier_rank"]
    assert fit["cluster_id"].tolist() == list(rank) and (fit["images"] == 6).all()
    assert rho == cluster_order(dict(zip(fit["cluster_id"], fit["mean_score"])), rank)
    assert -1.0 <= rho <= 1.0
    scores = score_images(model, held[4])
    member_mean = np.mean([score_images(mm, held[4]) for mm in members], axis=0)
    assert np.allclose(scores, member_mean) and ((scores >= 0) & (scores <= 1)).all()
    again = load_scorer(save_scorer(model, tmp_path / "ens.pt"))
    assert isinstance(again, ScorerEnsemble) and again.config.normalize == "per_image"
    np.testing.assert_allclose(score_images(again, held[4]), scores, atol=1e-6)
    # a seed gives the same member, bit for bit (CPU): the ensemble is reproducible
    again, hist1 = train_scorer(data, m, seed=1)
    assert hist1 == hists[1]
    assert np.array_equal(score_images(again, held[4]), score_images(members[1], held[4]))


def test_selected_step_reads_the_history():
    assert st.selected_step([{"step": 0, "start_selected": True}, {"step": 1}]) == -1
    assert st.selected_step([{"step": 0}, {"step": 1, "selected": True}, {"step": 2}]) == 1
    assert st.selected_step([{"step": 0}, {"step": 1}]) == 1  # nothing selected: the last
    assert st.selected_entry([{"step": 0}]) == {}


# ---- colour / texture statistics: the ridge start and the pre-fit ------------------------------


def _stats_model() -> ScorerModel:
    return ScorerModel(ScorerConfig(input_px=PX, colour_stats=True, texture_px=PX))


def _u8_pools(pools: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
    return {c: as_u8(v) for c, v in pools.items()}


def standardised_by(model, pools: dict, extra: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Raw statistics of ``pools`` and ``extra``; the model standardises by all of them."""
    pool_stats = {c: st.pool_statistics(model, x) for c, x in pools.items()}
    extra_stats = st.pool_statistics(model, extra)
    both = torch.cat([*pool_stats.values(), extra_stats])
    model.stat_mean.copy_(both.mean(0))
    model.stat_std.copy_(both.std(0).clamp_min(1e-4))
    return pool_stats, extra_stats


def test_init_from_ridge_is_the_ridge_fit_on_the_training_pools():
    """The direct statistics term starts at :func:`colour_stats.ridge_fit`'s coefficients (the
    feature ranker's), rescaled so the logits have sd 2 and mean 0; the head starts at zero."""
    model = _stats_model()
    pools = _u8_pools(flat_clusters(3, 8))
    pool_stats, _ = standardised_by(model, pools, pools[0])
    with pytest.raises(ValueError, match="colour statistics"):
        st.init_from_ridge(ScorerModel(ScorerConfig(input_px=PX)), pool_stats, RANK)
    st.init_from_ridge(model, pool_stats, RANK)
    z = torch.cat([model.standardised(pool_stats[c]) for c in sorted(pools)]).double().numpy()
    y = np.repeat([0.0, 1.0, 2.0], 8)
    coef, _ = ridge_fit(z, y, 1.0)
    w = model.stat_linear.weight.detach().double().numpy()[0]
    np.testing.assert_allclose(w / np.linalg.norm(w), coef / np.linalg.norm(coef), atol=1e-5)
    logits = z @ w + float(model.stat_linear.bias.detach())
    assert logits.std() == pytest.approx(2.0, rel=1e-3) and abs(logits.mean()) < 1e-3
    head = model.head.weight.detach()
    assert float(head.abs().sum()) == 0.0 and float(model.head.bias.detach()) == 0.0
    with torch.no_grad():
        means = [float(model(x).mean()) for x in pools.values()]
    assert means[0] < means[1] < means[2]


def test_statistics_prefit_with_year_consistency_scores_a_place_alike_across_years():
    """Two 'years' of the same places: one dimmer and shifted in colour.  The pre-fit's consistency
    term pulls a place's two years together without giving up the clusters' order."""
    pools = _u8_pools(flat_clusters(3, 8))
    levels = np.linspace(0, 1, 10)
    year_a = blue_images(levels, 7)
    year_b = np.clip(year_a * np.array([0.7, 0.6, 0.8]) + 20, 0, 255).astype(np.uint8)
    un = as_u8(np.concatenate([year_a, year_b]))
    groups = np.concatenate([np.arange(10), np.arange(10)])
    assert st.year_pairs(groups).tolist() == [[i, i + 10] for i in range(10)]

    def fitted(consistency: float):
        model = _stats_model()
        pool_stats, un_stats = standardised_by(model, pools, un)
        st.init_from_ridge(model, pool_stats, RANK)
        info = st.prefit_statistics(
            model,
            pool_stats,
            RANK,
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
    with pytest.raises(ValueError, match="colour statistics"):
        st.prefit_statistics(ScorerModel(ScorerConfig(input_px=PX)), {}, RANK, iterations=1)


def test_statistics_prefit_follows_the_labelled_images_order():
    """The label-order term: labelled images (soft index 0-2) scored in the annotators' order,
    scale-free (2 (1 - Pearson) with the index's ranks)."""
    pools = _u8_pools(flat_clusters(3, 8))
    levels = np.linspace(0, 1, 12)
    lab = as_u8(blue_images(levels, 11))
    model = _stats_model()
    pool_stats, lab_stats = standardised_by(model, pools, lab)
    st.init_from_ridge(model, pool_stats, RANK)
    info = st.prefit_statistics(
        model,
        pool_stats,
        RANK,
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


def test_training_starts_at_the_ridge_feature_ranker():
    """Zero steps: the head is the ridge fit on the training clusters (then, by default, the
    statistics' MLP pre-fitted from it); the CNN's head weights are zero either way."""
    pools = flat_clusters(3, 8)
    assert path_ranks([[[0], [1, 2]], [[0], [2]]]) == {0: 0.0, 1: 1.0, 2: 1.0}
    for prefit in (0, 200):
        m = tiny(steps=0, year_consistency=0.0, stat_prefit=prefit)
        model, hist = train_scorer(TrainingInputs(pools, LINE), m, seed=0)
        cnn_part = model.head.weight.detach()[:, :512]
        stat_part = model.head.weight.detach()[:, 512:]
        assert hist == [] and float(cnn_part.abs().sum()) == 0.0
        assert (float(stat_part.abs().sum()) > 0) == (prefit > 0)
        means = [score_images(model, v).mean() for v in flat_clusters(3, 6, seed=50).values()]
        assert means[0] < means[1] < means[2]
    val = flat_clusters(3, 4, seed=30)
    for competes in (False, True):
        # a learning rate near zero: every trained checkpoint is about the start
        m = tiny(steps=2, lr=1e-9, year_consistency=0.0, start_competes=competes)
        _, hist = train_scorer(TrainingInputs(pools, LINE, val=val, cluster_rank=RANK), m, seed=0)
        marked = sum(bool(h.get("selected")) for h in hist) + bool(hist[0].get("start_selected"))
        assert marked == 1 and "start_val_selection" in hist[0]
        assert "prefit_fit_loss" in hist[0]
        if not competes:  # the kept checkpoint is a trained one
            assert st.selected_step(hist) >= 0 and not hist[0].get("start_selected")


def test_rank_training_can_hold_the_prefitted_statistics_still():
    """``stat_lr_scale`` 0: rank training moves the CNN and the head, never the statistics."""
    data = TrainingInputs(flat_clusters(3, 8), LINE)
    start, _ = train_scorer(data, tiny(steps=0, year_consistency=0.0), seed=0)
    held, _ = train_scorer(data, tiny(steps=3, year_consistency=0.0, stat_lr_scale=0.0), seed=0)
    for name in ("stats.0.weight", "stat_linear.weight"):
        torch.testing.assert_close(held.state_dict()[name], start.state_dict()[name])
    assert not torch.equal(held.state_dict()["head.weight"], start.state_dict()["head.weight"])


# ---- label order, selection images and year consistency -----------------------------------------


def test_training_on_labelled_images_and_selecting_on_the_selection_images():
    """Labelled (fit) images feed the rank-training label-order term each step; the selection
    images are only scored, and the kept checkpoint is the best mean of cluster and label order."""
    pools = flat_clusters(3, 8)
    levels = np.linspace(0, 1, 40)
    labelled = (blue_images(levels, 21), 2 * levels)
    sel_levels = np.linspace(0.05, 0.95, 10)
    selection = (blue_images(sel_levels, 22), 2 * sel_levels)
    data = TrainingInputs(
        pools,
        LINE,
        val=flat_clusters(3, 4, seed=30),
        cluster_rank=RANK,
        labelled=labelled,
        selection=selection,
    )
    _, hist = train_scorer(data, tiny(steps=4, year_consistency=0.0, label_batch=8), seed=0)
    assert all(h["label_order"] > 0 for h in hist)
    assert hist[0]["prefit_labelled"] == 40  # the pre-fit saw the fit images too
    evals = [h for h in hist if "val_selection" in h]
    assert len(evals) == 4 and all(np.isfinite(h["val_label_order"]) for h in evals)
    for h in evals:
        assert h["val_selection"] == pytest.approx(
            (h["val_cluster_order"] + h["val_label_order"]) / 2
        )
    chosen = next(h for h in hist if h.get("selected"))
    assert chosen["val_selection"] == max(h["val_selection"] for h in evals)
    off = tiny(steps=2, year_consistency=0.0, rank_label_order=0.0)
    _, hist_off = train_scorer(TrainingInputs(pools, LINE, labelled=labelled), off, seed=0)
    assert all(h["label_order"] == 0 for h in hist_off)


def test_year_consistency_pairs_a_place_across_its_years():
    pools = flat_clusters(3, 8)
    levels = np.linspace(0, 1, 6)
    un = np.concatenate([blue_images(levels, 9), blue_images(levels, 10)])
    groups = np.array([f"t{i}" for i in range(6)] * 2)
    data = TrainingInputs(pools, LINE, unlabelled=un, groups=groups)
    _, hist = train_scorer(data, tiny(steps=2, stat_prefit=50), seed=0)
    assert all(np.isfinite(h["year_consistency"]) and h["year_consistency"] > 0 for h in hist)
    assert hist[0]["prefit_pairs"] == 6
    _, off = train_scorer(data, tiny(steps=2, stat_prefit=50, year_consistency=0.0), seed=0)
    assert all(h["year_consistency"] == 0 for h in off) and off[0]["prefit_pairs"] == 0
    alone = TrainingInputs(pools, LINE, unlabelled=un[:6], groups=groups[:6])  # one year only
    _, single = train_scorer(alone, tiny(steps=2, stat_prefit=50), seed=0)
    assert all(h["year_consistency"] == 0 for h in single)


# ---- the recipes -------------------------------------------------------------------------------


def test_the_smoke_recipe_trains_from_a_pretrained_resnet(monkeypatch, tmp_path):
    m = recipe_settings("smoke")
    assert m.from_pretrained and m.scorer_seeds == (0, 1) and m.tensor_px == 2 * PX
    tpx = m.tensor_px
    pools = flat_clusters(3, 8, px=tpx)
    levels = np.linspace(0, 1, 12)
    un = np.concatenate([blue_images(levels[:6], 9, tpx), blue_images(levels[:6], 10, tpx)])
    data = TrainingInputs(
        pools,
        LINE,
        val=flat_clusters(3, 4, seed=30, px=tpx),
        cluster_rank=RANK,
        labelled=(blue_images(levels, 21, tpx), 2 * levels),
        selection=(blue_images(levels[::3], 22, tpx), 2 * levels[::3]),
        unlabelled=un,
        groups=np.array([f"t{i}" for i in range(6)] * 2),
    )
    with pytest.raises(ValueError, match="no pretrained network"):
        train_scorer(data, m)
    torch.manual_seed(0)
    pre = HabitationModel(HabitationConfig(input_px=m.pretrain_px, arch="resnet18"))
    starts: list = []
    real = st.from_pretrained
    monkeypatch.setattr(st, "from_pretrained", lambda p, c: starts.append(p) or real(p, c))
    members, hists = st.train_scorers(data, m, pretrained=pre)
    assert starts == [pre, pre] and len(members) == 2
    for hist in hists:
        assert len(hist) == m.steps == 4
        assert sum(bool(h.get("selected")) for h in hist) + bool(hist[0].get("start_selected")) == 1
        assert all(np.isfinite(h["year_consistency"]) and h["label_order"] > 0 for h in hist)
        assert [h["step"] for h in hist if "val_selection" in h] == [1, 3]
    model = ensemble(members)
    s = score_images(model, blue_images(np.linspace(0, 1, 5), 3, tpx))
    assert s.shape == (5,) and np.all((s >= 0) & (s <= 1))
    again = load_scorer(save_scorer(model, tmp_path / "e.pt"))
    np.testing.assert_allclose(
        score_images(again, blue_images(np.linspace(0, 1, 5), 3, tpx)), s, atol=1e-6
    )


def test_the_recipes_construct_and_take_overrides():
    paper, cpu = recipe_settings("paper"), recipe_settings("cpu")
    assert paper.input_px == 256 and paper.rank_lambda == 30.0 and paper.grayscale
    assert paper.freeze_bn and paper.scorer_seeds == (0,) and not paper.colour_stats
    assert cpu.colour_stats and cpu.from_pretrained and cpu.tensor_px == 256
    assert cpu.scorer_seeds == (0, 1, 2) and cpu.sampling == "cluster"
    assert ModelSettings() == recipe_settings("small") and ModelSettings().scorer_seeds == (0,)
    assert recipe_settings("cpu", steps=7).steps == 7
    assert recipe_settings("cpu", per_cluster=3).per_tier == 3  # the old key still works
    assert cpu.with_overrides(lr=3e-4).lr == 3e-4 and cpu.lr == 1e-4
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_settings("gpu-fast")
    with pytest.raises(ValueError, match="from_pretrained needs"):
        recipe_settings("small", from_pretrained=True)
    for ok in (None, 256, 512):
        check_store_px(cpu, ok, "XX")
    check_store_px(recipe_settings("cpu", texture_px=0), 64, "XX")
    with pytest.raises(
        ValueError, match="country XX: the scorer reads fine texture at 256 px.*store_px is 64"
    ):
        check_store_px(cpu, 64, "XX")
