"""Stage 3's training loop: one trainer for every recipe.

For every least -> most developed path of the POG, images drawn from the path's tiers are scored
and a differentiable Spearman surrogate (:func:`rank_loss`) asks their scores to follow the tier
order, as the paper's Stage3/4_siScore.py.  Optional terms, each a setting: a linearity loss on
cut-mixed pairs (score behaves additively in built-up area), a label-order term on labelled
images, and a year-consistency term asking the same place to score alike in its different years
(normalised by the batch's score variance, so it rewards predictable scores instead of squeezing
them together).  With the colour / texture statistics the head starts at the ridge feature
ranker's ordering and is pre-fitted (:func:`prefit_statistics`).  Checkpoints are selected on
validation clusters and selection images that no loss term sees.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torchsort
from scipy.stats import spearmanr

from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models.colour_stats import ridge_fit
from siscore_assets.core.models.common import (
    augment_geometric,
    augment_photometric,
    average_ranks,
    check_images,
    choose_device,
    deterministic,
    iter_batches,
    resize_images,
    seed_everything,
    standardise,
)
from siscore_assets.core.models.habitation import HabitationModel, recalibrate_batchnorm
from siscore_assets.core.models.pretraining import augment, partners
from siscore_assets.core.models.scorer import (
    STAT_HIDDEN,
    ScorerConfig,
    ScorerModel,
    as_normalised,
    from_pretrained,
    score_images,
)
from siscore_assets.core.ranking.tiers import cluster_order, path_ranks

#: The synthetic country's photometric jitter (normalised units): yearly haze is not development.
BRIGHTNESS, CONTRAST = 0.05, 0.1


@dataclass
class TrainingInputs:
    """What one scorer trains and selects on (images uint8 (N, H, W, 3))."""

    pools: dict[int, np.ndarray]  # training images by cluster
    tier_paths: list[list[list[int]]]
    val: dict[int, np.ndarray] = field(default_factory=dict)  # selection clusters
    cluster_rank: dict[int, float] = field(default_factory=dict)  # tier index of each cluster
    labelled: tuple[np.ndarray, np.ndarray] | None = None  # (images, development index)
    selection: tuple[np.ndarray, np.ndarray] | None = None  # scored for selection only
    unlabelled: np.ndarray | None = None  # tile-years, for the year-consistency term
    groups: np.ndarray | None = None  # their tile ids: the same place in another year


def rank_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    kind: str = "softrank",
    lam: float = 30.0,
    strength: float = 0.05,
) -> torch.Tensor:
    """Squared error between standardised soft ranks of ``scores`` and the targets' ranks (ties
    averaged): 2 (1 - Pearson), a differentiable 1 - Spearman.  ``pairwise``: the paper's
    rank_i = sum_j sigmoid(lam (s_i - s_j)); ``softrank``: torchsort's soft rank."""
    if kind == "pairwise":
        soft = torch.sigmoid(lam * (scores[:, None] - scores[None, :])).sum(dim=1)
    elif kind == "softrank":
        soft = torchsort.soft_rank(scores.unsqueeze(0), regularization_strength=strength)
        soft = soft.squeeze(0)
    else:
        raise ValueError(f"rank_loss must be 'pairwise' or 'softrank', got {kind!r}")
    target = average_ranks(targets.to(scores.device))
    return (standardise(soft) - standardise(target)).pow(2).mean()


def usable_paths(
    pools: dict[int, np.ndarray], tier_paths: list[list[list[int]]]
) -> list[list[list[int]]]:
    """Drop clusters without images, then empty tiers, then paths with < 2 tiers."""
    usable = []
    for path in tier_paths:
        tiers = [sorted(int(c) for c in t if len(pools.get(int(c), ()))) for t in path]
        tiers = [t for t in tiers if t]
        if len(tiers) >= 2:
            usable.append(tiers)
    if not usable:
        raise ValueError("no tier path with at least two tiers that have images")
    return usable


def cutmix(
    xa: torch.Tensor, xb: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste a random box of each ``xb`` into ``xa``; returns (mixed, lam = share of a's area)."""
    n, _, h, w = xa.shape
    share_b = torch.rand(n, generator=generator) * 0.8 + 0.1  # a box of 10..90 % of the area
    aspect = torch.exp((torch.rand(n, generator=generator) - 0.5) * math.log(4.0))
    bh = torch.clamp((share_b * h * w * aspect).sqrt().round(), 1, h).long()
    bw = torch.clamp((share_b * h * w / aspect).sqrt().round(), 1, w).long()
    y0 = (torch.rand(n, generator=generator) * (h - bh + 1).float()).floor().long()
    x0 = (torch.rand(n, generator=generator) * (w - bw + 1).float()).floor().long()
    yy = torch.arange(h).view(1, h, 1)
    xx = torch.arange(w).view(1, 1, w)
    box = (
        (yy >= y0.view(n, 1, 1))
        & (yy < (y0 + bh).view(n, 1, 1))
        & (xx >= x0.view(n, 1, 1))
        & (xx < (x0 + bw).view(n, 1, 1))
    ).float()
    lam = 1.0 - box.mean(dim=(1, 2))
    box = box.unsqueeze(1).to(xa.device)
    return xa * (1.0 - box) + xb * box, lam.to(xa.device)


def uint8_tensor(images: np.ndarray, px: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, 3, px, px), area-resampled when the size differs."""
    arr = resize_images(check_images(images), px)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()


def pool_statistics(model: ScorerModel, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """:meth:`ScorerModel.raw_stats` of a (uint8) pool in batches: the native-size texture is
    the costly part, so training computes each pool's once."""
    return torch.cat([model.raw_stats(x[sl]) for sl in iter_batches(len(x), batch_size)])


def year_pairs(groups: np.ndarray) -> np.ndarray:
    """(P, 2) every pair of rows that share a group (the same place in two years)."""
    members: dict = {}
    for i, g in enumerate(np.asarray(groups)):
        members.setdefault(g, []).append(i)
    pairs = [(a, b) for rows in members.values() for i, a in enumerate(rows) for b in rows[i + 1 :]]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def variance_normalised_gap(
    sa: torch.Tensor, sb: torch.Tensor, spread: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared gap of paired scores over the variance of ``spread`` (default: both sides):
    scale-free, so it rewards predictable scores instead of squeezing them together."""
    scores = torch.cat([sa, sb]) if spread is None else spread
    return (sa - sb).pow(2).mean() / (scores.var() + 1e-4)


@torch.no_grad()
def init_from_ridge(
    model: ScorerModel,
    pool_stats: dict[int, torch.Tensor],
    rank: dict[int, float],
    alpha: float = 1.0,
    spread: float = 2.0,
) -> None:
    """Start the head at the ridge feature ranker fitted on the training pools only: the direct
    statistics term gets the ridge coefficients (logits at sd ``spread``), every other head
    weight starts at zero, so rank training begins from the feature ranker's ordering."""
    if model.stat_linear is None:
        raise ValueError("init_from_ridge needs a scorer with colour statistics")
    cs = [c for c in sorted(pool_stats) if c in rank and len(pool_stats[c])]
    st = torch.cat([model.standardised(pool_stats[c]) for c in cs]).double().numpy()
    y = np.concatenate([np.full(len(pool_stats[c]), rank[c]) for c in cs])
    coef, _ = ridge_fit(st, y, alpha)
    pred = st @ coef
    scale = spread / max(float(pred.std()), 1e-9)
    model.stat_linear.weight.copy_(torch.as_tensor(coef * scale, dtype=torch.float32)[None, :])
    model.stat_linear.bias.fill_(-float(pred.mean()) * scale)
    model.head.weight.zero_()
    model.head.bias.zero_()


def prefit_statistics(
    model: ScorerModel,
    pool_stats: dict[int, torch.Tensor],
    rank: dict[int, float],
    *,
    iterations: int,
    weight_decay: float = 1e-3,
    consistency: float = 0.0,
    unlabelled: torch.Tensor | None = None,
    groups: np.ndarray | None = None,
    labelled: torch.Tensor | None = None,
    label_index: np.ndarray | None = None,
    label_weight: float = 0.0,
    spread: float = 2.0,
    seed: int = 0,
) -> dict:
    """Fit the head's statistics branches (MLP + direct linear term, from the ridge start) to the
    training clusters' tier index, full batch, before rank training: a *nonlinear* start (a
    linear one cannot separate sparse rural tiles from empty ones).  ``consistency`` with
    ``unlabelled`` tile-years grouped by place asks a place's years to score alike (what makes
    leaf-off and leaf-on seasons comparable); ``label_weight`` with ``labelled`` statistics and
    their development index asks them to follow the annotators' order.  Logits are rescaled to
    sd ``spread``; the CNN's head weights stay zero.  Inputs are raw statistics."""
    if model.stats is None or model.stat_linear is None:
        raise ValueError("prefit_statistics needs a scorer with colour statistics")
    cs = [c for c in sorted(pool_stats) if c in rank and len(pool_stats[c])]
    z = torch.cat([model.standardised(pool_stats[c]) for c in cs]).float()
    y = torch.cat([torch.full((len(pool_stats[c]),), float(rank[c])) for c in cs])
    y = (y - y.mean()) / y.std().clamp_min(1e-6)
    z_un, pairs = None, np.zeros((0, 2), np.int64)
    if consistency > 0 and unlabelled is not None and groups is not None and len(unlabelled):
        pairs = year_pairs(groups)
        if len(pairs):
            z_un = model.standardised(unlabelled).float()
    pairs_t = torch.from_numpy(pairs)
    z_lab = lab_target = None
    if label_weight > 0 and labelled is not None and label_index is not None and len(labelled) >= 3:
        z_lab = model.standardised(labelled).float()
        index = torch.as_tensor(np.asarray(label_index), dtype=torch.float32)
        lab_target = standardise(average_ranks(index))
    cnn_w = model.head.weight.shape[1] - STAT_HIDDEN
    gen = torch.Generator().manual_seed(seed)
    out_w = torch.nn.Parameter(torch.randn(1, STAT_HIDDEN, generator=gen) * 0.1)
    params = [*model.stats.parameters(), *model.stat_linear.parameters(), out_w]

    def predict(x: torch.Tensor) -> torch.Tensor:
        return (model.stats(x) @ out_w.t() + model.stat_linear(x)).squeeze(1)

    fit_loss = cons_loss = lab_loss = torch.zeros(())
    with torch.enable_grad():
        opt = torch.optim.Adam(params, lr=1e-2, weight_decay=weight_decay)
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            fit_loss = (predict(z) - y).pow(2).mean()
            loss = fit_loss
            if z_un is not None:
                s_un = predict(z_un)
                cons_loss = variance_normalised_gap(s_un[pairs_t[:, 0]], s_un[pairs_t[:, 1]], s_un)
                loss = loss + consistency * cons_loss
            if z_lab is not None:
                lab_loss = (standardise(predict(z_lab)) - lab_target).pow(2).mean()
                loss = loss + label_weight * lab_loss
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = predict(z)
        scale = spread / max(float(pred.std()), 1e-9)
        model.head.weight.zero_()
        model.head.weight[:, cnn_w:] = out_w * scale
        model.stat_linear.weight.mul_(scale)
        model.stat_linear.bias.mul_(scale)
        model.head.bias.fill_(-float(pred.mean()) * scale)
    return {
        "fit_loss": float(fit_loss.detach()),
        "consistency": float(cons_loss.detach()),
        "label_order": float(lab_loss.detach()),
        "pairs": int(len(pairs)),
        "labelled": 0 if z_lab is None else int(len(z_lab)),
    }


def cluster_means(model: nn.Module, images_by_cluster: dict[int, np.ndarray]) -> dict[int, float]:
    """Each cluster's mean score (clusters with images)."""
    return {
        c: float(score_images(model, imgs).mean())
        for c, imgs in sorted(images_by_cluster.items())
        if len(imgs)
    }


def _start_statistics(
    model: ScorerModel,
    m: ModelSettings,
    pools: dict[int, torch.Tensor],
    paths: list,
    x_un: torch.Tensor | None,
    groups: np.ndarray | None,
    labelled: tuple[torch.Tensor, torch.Tensor] | None,
    seed: int,
) -> dict:
    """Standardise the statistics on the training images, then the ridge start and pre-fit."""
    pool_stats = {c: pool_statistics(model, x) for c, x in pools.items()}
    un_stats = pool_statistics(model, x_un) if x_un is not None else None
    st = torch.cat(list(pool_stats.values()) + ([un_stats] if un_stats is not None else []))
    model.stat_mean.copy_(st.mean(0))
    model.stat_std.copy_(st.std(0).clamp_min(1e-4))
    if not m.stat_init:
        return {}
    rank = path_ranks(paths)
    init_from_ridge(model, pool_stats, rank)
    if m.stat_prefit <= 0:
        return {}
    use_labels = labelled is not None and m.label_order > 0
    prefit = prefit_statistics(
        model,
        pool_stats,
        rank,
        iterations=m.stat_prefit,
        weight_decay=m.stat_weight_decay,
        consistency=m.year_consistency,
        unlabelled=un_stats,
        groups=groups,
        seed=seed,
        label_weight=m.label_order,
        labelled=pool_statistics(model, labelled[0]) if use_labels else None,
        label_index=labelled[1].numpy() if use_labels else None,
    )
    return {f"prefit_{k}": v for k, v in prefit.items()}


def _optimizer(model: ScorerModel, m: ModelSettings) -> torch.optim.Optimizer:
    """Adam; the pre-fitted statistics branches at ``stat_lr_scale`` x the rate."""
    stat_ids = {
        id(p) for b in (model.stats, model.stat_linear) if b is not None for p in b.parameters()
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in stat_ids]}]
    if stat_ids:
        stat = [p for p in trainable if id(p) in stat_ids]
        groups.append({"params": stat, "lr": m.lr * m.stat_lr_scale})
    return torch.optim.Adam(groups, lr=m.lr)


def train_scorer(
    data: TrainingInputs,
    m: ModelSettings,
    *,
    seed: int = 0,
    pretrained: HabitationModel | None = None,
    device: str | torch.device | None = None,
) -> tuple[ScorerModel, list[dict]]:
    """Train one scorer on ``data`` with settings ``m``; returns (model in eval mode, history).

    Each step takes the next path of a seeded shuffled cycle over all paths and draws
    ``per_tier`` images from each tier's pooled images (``sampling: tier``) or from every cluster
    of each tier (``cluster``), capped by ``max_batch``.  The loss is

        rank + rank_label_order * label_order + year_consistency * consistency
             + alpha_linearity * linearity

    With validation clusters (and selection images), every ``eval_every`` steps and at the end
    the checkpoint with the best selection figure (later wins ties) is kept.  Deterministic for a
    given seed on CPU.  History rows: step, path, loss and each term, batch_spearman, and the
    selection figures where measured (``selected`` marks the kept step)."""
    paths = usable_paths(data.pools, data.tier_paths)
    if m.from_pretrained and pretrained is None:
        raise ValueError("from_pretrained is set but no pretrained network was given")
    dev = choose_device(device)
    cfg = ScorerConfig.of(m)
    history: list[dict] = []
    info: dict = {}
    with deterministic(dev.type == "cpu"):
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        used = sorted({c for p in paths for t in p for c in t})
        pools = {c: uint8_tensor(data.pools[c], cfg.tensor_px) for c in used}
        tier_pool = {}  # a tier's pooled images, for tier sampling only (a copy of its pools)
        if m.sampling == "tier":
            tier_pool = {
                tuple(t): torch.cat([pools[c] for c in t]) if len(t) > 1 else pools[t[0]]
                for p in paths
                for t in p
            }
        consistent = m.year_consistency > 0 and data.unlabelled is not None and len(data.unlabelled)
        x_un = uint8_tensor(data.unlabelled, cfg.tensor_px) if consistent else None
        groups = np.asarray(data.groups) if x_un is not None else None
        multi = np.array([], dtype=np.int64)
        if groups is not None:
            _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
            multi = np.flatnonzero(counts[inverse] >= 2)
        lab = None
        if data.labelled is not None and len(data.labelled[0]):
            lab_y = torch.as_tensor(data.labelled[1], dtype=torch.float32)
            lab = (uint8_tensor(data.labelled[0], cfg.tensor_px), lab_y)
        model = from_pretrained(pretrained if m.from_pretrained else None, cfg)
        if cfg.colour_stats:
            info = _start_statistics(model, m, pools, paths, x_un, groups, lab, seed)
        model = model.to(dev)
        bns = [b for b in model.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
        if m.freeze_bn:
            for p in (p for b in bns for p in b.parameters()):
                p.requires_grad_(False)
        opt = _optimizer(model, m)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, m.steps))
        selector = _Selector(model, data, m)
        label_steps = (
            lab is not None and len(lab[0]) >= 3 and m.rank_label_order > 0 and m.label_batch >= 3
        )
        order: list[int] = []
        for step in range(m.steps):
            model.train()
            if m.freeze_bn:
                for b in bns:
                    b.eval()
            if not order:
                order = list(rng.permutation(len(paths)))
            pi = int(order.pop(0))
            path = paths[pi]
            k = m.per_tier
            if m.max_batch:
                k = max(2, min(k, m.max_batch // len(path)))
            xs, ys = [], []
            for ti, tier in enumerate(path):
                per = (
                    [pools[c] for c in tier]
                    if m.sampling == "cluster"
                    else [tier_pool[tuple(tier)]]
                )
                for pool in per:
                    idx = rng.choice(len(pool), size=k, replace=len(pool) < k)
                    xs.append(pool[torch.from_numpy(idx)])
                    ys.append(torch.full((k,), float(ti)))
            n = sum(len(v) for v in xs)
            n_l = 0
            if label_steps:
                size = min(m.label_batch, len(lab[0]))
                li = torch.from_numpy(rng.choice(len(lab[0]), size=size, replace=False))
                xs.append(lab[0][li])
                y_lab = lab[1][li].to(dev)
                n_l = len(li)
            x = _augment(as_normalised(torch.cat(xs), m.normalize), gen, m)
            y = torch.cat(ys).to(dev)
            n_c = 0
            if len(multi):
                ua = rng.choice(multi, size=min(m.consistency_batch, len(multi)), replace=False)
                ub = partners(groups, rng, ua)
                views = [
                    _augment(as_normalised(x_un[torch.from_numpy(u)], m.normalize), gen, m)
                    for u in (ua, ub)
                ]
                x = torch.cat([x, *views])
                n_c = len(ua)
            n_mix = int(round(m.mix_fraction * n)) if m.alpha_linearity > 0 else 0
            if n_mix:
                ia = torch.randint(0, n, (n_mix,), generator=gen)
                ib = (ia + torch.randint(1, n, (n_mix,), generator=gen)) % n
                mixed, lam = cutmix(x[ia], x[ib], gen)
                x = torch.cat([x, mixed])
            s = model(x.to(dev))
            zero = torch.zeros((), device=dev)
            rl = rank_loss(s[:n], y, m.rank_loss, m.rank_lambda, m.softrank_strength)
            ll = (
                rank_loss(s[n : n + n_l], y_lab, m.rank_loss, m.rank_lambda, m.softrank_strength)
                if n_l
                else zero
            )
            end = n + n_l + 2 * n_c
            cl = (
                variance_normalised_gap(s[n + n_l : n + n_l + n_c], s[n + n_l + n_c : end])
                if n_c
                else zero
            )
            lin = zero
            if n_mix:
                ia_d, ib_d = ia.to(dev), ib.to(dev)
                expected = lam * s[ia_d].detach() + (1.0 - lam) * s[ib_d].detach()
                lin = (s[end:] - expected).pow(2).mean()
            loss = rl + m.rank_label_order * ll + m.year_consistency * cl + m.alpha_linearity * lin
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                rho = float(
                    (
                        standardise(average_ranks(s[:n].detach())) * standardise(average_ranks(y))
                    ).mean()
                )
            history.append(
                {
                    "step": step,
                    "path": pi,
                    "loss": float(loss.detach()),
                    "rank_loss": float(rl.detach()),
                    "label_order": float(ll.detach()),
                    "year_consistency": float(cl.detach()),
                    "lin_loss": float(lin.detach()),
                    "batch_spearman": rho,
                }
            )
            if selector.due(step):
                history[-1].update(selector.measure(step))
        selector.restore(history)
        if m.recalibrate_bn and not m.freeze_bn:
            calib = torch.cat([pools[c] for c in used] + ([x_un] if x_un is not None else []))
            recalibrate_batchnorm(model, calib, batch_size=128)
    if history:
        history[0].update(info, **{f"start_{k}": v for k, v in selector.start.items()})
    model.eval()
    return model, history


def _augment(x: torch.Tensor, gen: torch.Generator, m: ModelSettings) -> torch.Tensor:
    """rot90 / flip, then the scene augmentation (haze, gain, gamma) or a photometric jitter."""
    if m.augmentation == "scene":
        return augment(x, gen, m.colour_jitter)
    x = augment_geometric(x, gen)
    return augment_photometric(x, gen, brightness=BRIGHTNESS, contrast=CONTRAST)


class _Selector:
    """Checkpoint selection on what no loss term sees: the validation clusters' order, averaged
    with the selection images' Spearman against their development index when there are some."""

    def __init__(self, model: ScorerModel, data: TrainingInputs, m: ModelSettings) -> None:
        self.model, self.m = model, m
        self.val, self.rank = data.val, data.cluster_rank
        sel = data.selection
        self.sel = (
            (sel[0], np.asarray(sel[1], float)) if sel is not None and len(sel[0]) >= 3 else None
        )
        self.on = bool(self.val) and bool(self.rank) and m.eval_every > 0
        self.best: tuple[float, int, dict] | None = None
        self.start = self.figures() if self.on else {}
        if self.start and m.colour_stats and m.stat_init and m.start_competes:
            self.best = (self.start["val_selection"], -1, copy.deepcopy(model.state_dict()))

    def due(self, step: int) -> bool:
        last = step == self.m.steps - 1
        return self.on and ((step + 1) % self.m.eval_every == 0 or last)

    def figures(self) -> dict:
        fig = {"val_cluster_order": cluster_order(cluster_means(self.model, self.val), self.rank)}
        if self.sel is None:
            fig["val_selection"] = fig["val_cluster_order"]
            return fig
        scores = score_images(self.model, self.sel[0])
        fig["val_label_order"] = float(spearmanr(scores, self.sel[1]).statistic)
        fig["val_selection"] = float(np.nanmean([fig["val_cluster_order"], fig["val_label_order"]]))
        return fig

    def measure(self, step: int) -> dict:
        fig = self.figures()
        if self.best is None or fig["val_selection"] >= self.best[0]:
            self.best = (fig["val_selection"], step, copy.deepcopy(self.model.state_dict()))
        return fig

    def restore(self, history: list[dict]) -> None:
        """Load the kept checkpoint and mark it in ``history``."""
        if self.best is None:
            return
        self.model.load_state_dict(self.best[2])
        for h in history:
            h["selected"] = h["step"] == self.best[1]
        if self.best[1] < 0 and history:
            history[0]["start_selected"] = True


def train_scorers(
    data: TrainingInputs,
    m: ModelSettings,
    *,
    pretrained: HabitationModel | None = None,
    device: str | torch.device | None = None,
    on_member: Callable[[int, ScorerModel], None] | None = None,
) -> tuple[list[ScorerModel], list[list[dict]]]:
    """One scorer per seed of ``m.scorer_seeds`` (``on_member(seed, model)`` after each)."""
    members, histories = [], []
    for seed in m.scorer_seeds:
        model, history = train_scorer(data, m, seed=int(seed), pretrained=pretrained, device=device)
        if on_member is not None:
            on_member(int(seed), model)
        members.append(model)
        histories.append(history)
    return members, histories


def selected_entry(history: list[dict]) -> dict:
    """The history entry of the kept trained checkpoint (with its selection figures); {} when
    the untrained start was kept or nothing was selected."""
    return next((h for h in history if h.get("selected")), {})


def selected_step(history: list[dict]) -> int:
    """The kept checkpoint's step: -1 for the untrained start, the last step without selection."""
    if history and history[0].get("start_selected"):
        return -1
    return selected_entry(history).get("step", len(history) - 1)
