"""Stage 3 on real imagery: a ResNet-18 scorer started from the pretrained network, trained on
POG paths with the uninhabited images as the bottom cluster, as the paper's Stage3/4_siScore.py.

Differences from :mod:`scorer` (the synthetic country's path), each one measured in
benchmarks/RESULTS.md: the trunk starts from Stage-1 pretraining; fixed normalisation keeps the
colour signal; colour / texture statistics of the tile (:mod:`colour_stats`) feed the head beside
the CNN's features, the head starting at the ridge feature ranker's
ordering (:func:`init_from_ridge`); the scene augmentation spans the years' haze and colour balance; and a
consistency term asks the same district tile to score alike in its different years (normalised
by the batch's score variance, so it rewards scores that are predictable across years instead of
squeezing them together).  Rank loss: the paper's pairwise-sigmoid soft rank (lambda = 30), or
torchsort's soft rank.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torchsort
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from torchvision.models import resnet18

from siscore_assets.core.models.colour_stats import all_stats, stat_names
from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    average_ranks,
    check_images,
    choose_device,
    deterministic,
    images_to_tensor,
    iter_batches,
    load_checkpoint,
    resize_images,
    resize_tensor,
    save_checkpoint,
    seed_everything,
    standardise,
)
from siscore_assets.core.models.habitation import HabitationModel, recalibrate_batchnorm
from siscore_assets.core.models.pretraining import augment, partners
from siscore_assets.core.models.recipes import Recipe

KIND = "siscore.ranker"
_STAT_HIDDEN = 16


@dataclass(frozen=True)
class RankerConfig:
    """Preprocessing (``input_px``, ``grayscale``, ``normalize`` as :class:`scorer.ScorerConfig`) and
    the head: a grayscale CNN input and/or colour statistics beside it."""

    input_px: int = 64
    grayscale: bool = False  # the tensor handed to the model stays RGB: statistics need colour
    normalize: str = "fixed"
    cnn_grayscale: bool = False
    colour_stats: bool = True
    texture_px: int = (
        0  # > 0: fine-texture statistics at this (native) size; the CNN still sees input_px
    )

    @property
    def tensor_px(self) -> int:
        """The side of the tensor the model takes: the CNN's input is area-resampled from it."""
        return max(self.input_px, self.texture_px) if self.colour_stats else self.input_px


class RankerModel(nn.Module):
    """ResNet-18 trunk (+ colour statistics) -> one logit -> sigmoid score in [0, 1].

    Takes fixed-normalised float tensors, or uint8 (N, 3, H, W) ones (normalised here, so training
    pools at native size stay a quarter of the memory), at ``config.tensor_px``."""

    def __init__(self, config: RankerConfig | None = None) -> None:
        super().__init__()
        self.config = config or RankerConfig()
        self.net = resnet18(weights=None, num_classes=1)
        self.net.fc = nn.Identity()
        k = len(stat_names(self.config.texture_px))
        self.register_buffer("stat_mean", torch.zeros(k))
        self.register_buffer("stat_std", torch.ones(k))
        self.stats = (
            nn.Sequential(nn.Linear(k, _STAT_HIDDEN), nn.ReLU())
            if self.config.colour_stats
            else None
        )
        # A direct linear term of the statistics: the ridge feature ranker's ordering, when initialised so.
        self.stat_linear = nn.Linear(k, 1) if self.config.colour_stats else None
        self.head = nn.Linear(512 + (_STAT_HIDDEN if self.config.colour_stats else 0), 1)

    def raw_stats(self, x: torch.Tensor) -> torch.Tensor:
        """The statistics of a (normalised or uint8) batch, before standardisation."""
        with torch.no_grad():
            return all_stats(
                as_normalised(x) * PIXEL_STD + PIXEL_MEAN,
                self.config.input_px,
                self.config.texture_px,
            )

    def standardised(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw statistics standardised with the training set's mean and sd (the head's inputs)."""
        return (raw - self.stat_mean) / self.stat_std

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = as_normalised(x)
        cnn_in = resize_tensor(x, self.config.input_px)
        if self.config.cnn_grayscale:
            lum = 0.299 * cnn_in[:, 0:1] + 0.587 * cnn_in[:, 1:2] + 0.114 * cnn_in[:, 2:3]
            cnn_in = lum.expand(-1, 3, -1, -1)
        h = self.net(cnn_in)
        if self.stats is not None:
            st = self.standardised(self.raw_stats(x))
            return (
                self.head(torch.cat([h, self.stats(st)], dim=1)) + self.stat_linear(st)
            ).squeeze(1)
        return self.head(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


def as_normalised(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> fixed-normalised float; float tensors pass through unchanged."""
    if x.dtype != torch.uint8:
        return x
    return (x.float().div_(255.0) - PIXEL_MEAN) / PIXEL_STD


def from_pretrained(pretrained: HabitationModel | None, config: RankerConfig) -> RankerModel:
    """A ranker whose trunk is the pretrained ResNet-18's (its 3-way head dropped)."""
    model = RankerModel(config)
    if pretrained is not None:
        if pretrained.config.arch != "resnet18":
            raise ValueError("the scorer starts from a ResNet-18 pretraining (arch 'resnet18')")
        state = {k: v for k, v in pretrained.net.state_dict().items() if not k.startswith("fc.")}
        model.net.load_state_dict(state, strict=False)
    return model


def path_ranks(paths: list[list[list[int]]]) -> dict[int, float]:
    """Each cluster's mean tier index over the paths it lies on (0 = the bottom)."""
    seen: dict[int, list[float]] = {}
    for path in paths:
        for ti, tier in enumerate(path):
            for c in tier:
                seen.setdefault(c, []).append(float(ti))
    return {c: float(np.mean(v)) for c, v in seen.items()}


@torch.no_grad()
def init_from_ridge(
    model: RankerModel,
    pool_stats: dict[int, torch.Tensor],
    rank: dict[int, float],
    alpha: float = 1.0,
    spread: float = 2.0,
) -> None:
    """Start the head at the ridge feature ranker fitted on the training pools only (``pool_stats``:
    each cluster's :func:`pool_statistics`): the direct statistics term gets the ridge coefficients
    (logits standardised to sd ``spread``), every other head weight starts at zero, so rank training
    begins from the feature ranker's ordering."""
    if model.stat_linear is None:
        raise ValueError("init_from_ridge needs a ranker with colour statistics")
    cs = [c for c in sorted(pool_stats) if c in rank and len(pool_stats[c])]
    st = torch.cat([model.standardised(pool_stats[c]) for c in cs]).double().numpy()
    y = np.concatenate([np.full(len(pool_stats[c]), rank[c]) for c in cs])
    fit = Ridge(alpha=alpha).fit(st, y)
    pred = st @ fit.coef_
    scale = spread / max(float(pred.std()), 1e-9)
    model.stat_linear.weight.copy_(torch.as_tensor(fit.coef_ * scale, dtype=torch.float32)[None, :])
    model.stat_linear.bias.fill_(-float(pred.mean()) * scale)
    model.head.weight.zero_()
    model.head.bias.zero_()


def year_pairs(groups: np.ndarray) -> np.ndarray:
    """(P, 2) every pair of rows that share a group (the same place in two years)."""
    members: dict = {}
    for i, g in enumerate(np.asarray(groups)):
        members.setdefault(g, []).append(i)
    pairs = [(a, b) for rows in members.values() for i, a in enumerate(rows) for b in rows[i + 1 :]]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def prefit_statistics(
    model: RankerModel,
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
    """Fit the head's statistics branches (the small MLP and the direct linear term, from the ridge
    start) to the training clusters' tier index, full batch, before rank training: a *nonlinear*
    feature start (a linear one cannot separate sparse rural tiles from empty ones).  With
    ``consistency`` and ``unlabelled`` tile-years grouped by place, the same variance-normalised
    cross-year term as rank training asks a place's years to score alike: what makes the colour
    statistics' seasons (leaf-off 2016) comparable.  With ``label_weight`` and ``labelled`` images of
    the pretraining split (never the held-out labels) with their soft development index (urban 2,
    rural 1, uninhabited 0), a scale-free rank term (2 (1 - Pearson) with the index's ranks) asks
    their scores to follow the annotators' order too.  The logits are then rescaled to sd
    ``spread``; the CNN's head weights stay zero.  ``pool_stats``, ``unlabelled`` and ``labelled`` are
    raw statistics (:func:`pool_statistics`), computed once by the caller.  Returns the final losses."""
    if model.stats is None or model.stat_linear is None:
        raise ValueError("prefit_statistics needs a ranker with colour statistics")
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
        lab_target = standardise(
            average_ranks(torch.as_tensor(np.asarray(label_index), dtype=torch.float32))
        )
    cnn_w = model.head.weight.shape[1] - _STAT_HIDDEN
    out_w = torch.nn.Parameter(
        torch.randn(1, _STAT_HIDDEN, generator=torch.Generator().manual_seed(seed)) * 0.1
    )
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
                cons_loss = (s_un[pairs_t[:, 0]] - s_un[pairs_t[:, 1]]).pow(2).mean() / (
                    s_un.var() + 1e-4
                )
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


def rank_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    kind: str,
    lam: float = 30.0,
    strength: float = 0.05,
) -> torch.Tensor:
    """Squared error between standardised soft ranks of ``scores`` and the path order's ranks
    (= 2 (1 - Pearson), a Spearman surrogate).  ``pairwise``: rank_i = sum_j sigmoid(lam (s_i - s_j));
    ``softrank``: torchsort's soft rank."""
    if kind == "pairwise":
        soft = torch.sigmoid(lam * (scores[:, None] - scores[None, :])).sum(dim=1)
    elif kind == "softrank":
        soft = torchsort.soft_rank(scores.unsqueeze(0), regularization_strength=strength).squeeze(0)
    else:
        raise ValueError(f"rank_loss must be 'pairwise' or 'softrank', got {kind!r}")
    return (standardise(soft) - standardise(average_ranks(targets))).pow(2).mean()


def _uint8_tensor(imgs: np.ndarray, px: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, 3, px, px) (``resize_images``' resampling when the size differs)."""
    return (
        torch.from_numpy(np.ascontiguousarray(resize_images(imgs, px)))
        .permute(0, 3, 1, 2)
        .contiguous()
    )


def pool_statistics(model: RankerModel, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """:meth:`RankerModel.raw_stats` of a (uint8) pool, in batches: the fine texture at native size is
    the costly part, so training computes each pool's once."""
    return torch.cat([model.raw_stats(x[sl]) for sl in iter_batches(len(x), batch_size)])


@torch.inference_mode()
def score(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Scores in [0, 1] of uint8 images (the model's own preprocessing), float64."""
    imgs = check_images(images)
    model.eval()
    dev = next(model.parameters()).device
    out = [
        model(images_to_tensor(imgs[sl], model.config.tensor_px, device=dev)).double().cpu()
        for sl in iter_batches(len(imgs), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def cluster_order(
    model: nn.Module, images_by_cluster: dict[int, np.ndarray], rank: dict[int, float]
) -> float:
    """Spearman rho of clusters' mean scores vs their tier index (clusters with a rank only)."""
    cs = [c for c in sorted(images_by_cluster) if c in rank and len(images_by_cluster[c])]
    if len(cs) < 3:
        return float("nan")
    means = [float(score(model, images_by_cluster[c]).mean()) for c in cs]
    return float(spearmanr(means, [rank[c] for c in cs]).statistic)


def train_ranker(
    images_by_cluster: dict[int, np.ndarray],
    tier_paths: list[list[list[int]]],
    recipe: Recipe,
    *,
    pretrained: HabitationModel | None = None,
    unlabelled: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    val: dict[int, np.ndarray] | None = None,
    cluster_rank: dict[int, float] | None = None,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    selection: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[RankerModel, list[dict]]:
    """Train one scorer; returns it (eval mode) and per-step history.  Every step takes the next
    path of a seeded cycle and draws ``recipe.per_cluster`` images from every cluster on it; with
    ``unlabelled`` images and ``groups`` (same id = same place in another year), the year
    consistency term is added.  With ``val`` and ``cluster_rank`` the checkpoint with the best
    validation cluster order (every ``eval_every`` steps) is kept: ``val`` must not be test data.
    ``labelled`` (images, soft development index; ``habitation.label_splits``' fit rows, never the
    held-out labels) feed the pre-fit's label-order term (``recipe.label_order``) and,
    ``recipe.label_batch`` a step, rank training's (``recipe.rank_label_order``).  ``selection``
    (images, index; the selection rows, which no stage trains on) joins checkpoint selection: the
    mean of validation cluster order and their Spearman with the index."""
    paths = [
        [[c for c in t if c in images_by_cluster and len(images_by_cluster[c])] for t in p]
        for p in tier_paths
    ]
    paths = [[t for t in p if t] for p in paths]
    paths = [p for p in paths if len(p) >= 2]
    if not paths:
        raise ValueError("no tier path with at least two tiers that have images")
    dev = choose_device(device)
    k = recipe.per_cluster
    cfg = RankerConfig(
        input_px=recipe.input_px,
        cnn_grayscale=recipe.cnn_grayscale,
        colour_stats=recipe.colour_stats,
        texture_px=recipe.texture_px if recipe.colour_stats else 0,
    )
    px = cfg.tensor_px
    history: list[dict] = []
    prefit_info: dict = {}
    with deterministic(dev.type == "cpu"):
        seed_everything(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        used = sorted({c for p in paths for t in p for c in t})
        pools = {c: _uint8_tensor(images_by_cluster[c], px) for c in used}
        x_un = (
            _uint8_tensor(unlabelled, px)
            if unlabelled is not None and len(unlabelled) and recipe.year_consistency > 0
            else None
        )
        multi = np.array([], dtype=np.int64)
        if x_un is not None:
            g = np.asarray(groups)
            _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
            multi = np.flatnonzero(counts[inverse] >= 2)
        lab_x = lab_y = sel_x = sel_y = None
        if labelled is not None and len(labelled[0]):
            lab_x, lab_y = (
                _uint8_tensor(labelled[0], px),
                torch.as_tensor(labelled[1], dtype=torch.float32),
            )
        if selection is not None and len(selection[0]) >= 3:
            sel_x, sel_y = selection[0], np.asarray(selection[1], dtype=float)
        model = from_pretrained(pretrained, cfg)
        if cfg.colour_stats:
            pool_stats = {c: pool_statistics(model, pools[c]) for c in used}
            un_stats = pool_statistics(model, x_un) if x_un is not None else None
            st = torch.cat(list(pool_stats.values()) + ([un_stats] if un_stats is not None else []))
            model.stat_mean.copy_(st.mean(0))
            model.stat_std.copy_(st.std(0).clamp_min(1e-4))
            if recipe.stat_init:
                init_from_ridge(model, pool_stats, path_ranks(paths))
                if recipe.stat_prefit > 0:
                    use_labels = lab_x is not None and recipe.label_order > 0
                    prefit = prefit_statistics(
                        model,
                        pool_stats,
                        path_ranks(paths),
                        iterations=recipe.stat_prefit,
                        weight_decay=recipe.stat_weight_decay,
                        consistency=recipe.year_consistency,
                        unlabelled=un_stats,
                        groups=groups,
                        seed=seed,
                        label_weight=recipe.label_order,
                        labelled=pool_statistics(model, lab_x) if use_labels else None,
                        label_index=lab_y.numpy() if use_labels else None,
                    )
                    prefit_info = {f"prefit_{k}": v for k, v in prefit.items()}
        model = model.to(dev)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if recipe.freeze_bn:
            for bn in bns:
                for p in bn.parameters():
                    p.requires_grad_(False)
        stat_ids = {
            id(p) for m in (model.stats, model.stat_linear) if m is not None for p in m.parameters()
        }
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(
            [
                {"params": [p for p in trainable if id(p) not in stat_ids]},
                {
                    "params": [p for p in trainable if id(p) in stat_ids],
                    "lr": recipe.lr * recipe.stat_lr_scale,
                },
            ],
            lr=recipe.lr,
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, recipe.steps))
        order: list[int] = []
        selecting = bool(val) and bool(cluster_rank) and recipe.eval_every > 0
        label_steps = (
            lab_x is not None
            and len(lab_x) >= 3
            and recipe.rank_label_order > 0
            and recipe.label_batch >= 3
        )

        def selection() -> dict:
            fig = {"val_cluster_order": cluster_order(model, val, cluster_rank)}
            if sel_x is not None:
                fig["val_label_order"] = float(spearmanr(score(model, sel_x), sel_y).statistic)
                fig["val_selection"] = float(
                    np.nanmean([fig["val_cluster_order"], fig["val_label_order"]])
                )
            else:
                fig["val_selection"] = fig["val_cluster_order"]
            return fig

        best: tuple[float, int, dict] | None = None
        start_fig = selection() if selecting else {}
        if (
            start_fig and cfg.colour_stats and recipe.stat_init and recipe.start_competes
        ):  # the start competes too
            best = (start_fig["val_selection"], -1, copy.deepcopy(model.state_dict()))
        for step in range(recipe.steps):
            model.train()
            if recipe.freeze_bn:
                for bn in bns:
                    bn.eval()
            if not order:
                order = list(rng.permutation(len(paths)))
            path = paths[int(order.pop(0))]
            xs, ys = [], []
            for ti, tier in enumerate(path):
                for c in tier:
                    idx = rng.choice(len(pools[c]), size=k, replace=len(pools[c]) < k)
                    xs.append(pools[c][torch.from_numpy(idx)])
                    ys.append(torch.full((k,), float(ti)))
            n = sum(len(v) for v in xs)
            n_l = 0
            if label_steps:
                li = torch.from_numpy(
                    rng.choice(len(lab_x), size=min(recipe.label_batch, len(lab_x)), replace=False)
                )
                xs.append(lab_x[li])
                y_lab = lab_y[li].to(dev)
                n_l = len(li)
            x = augment(as_normalised(torch.cat(xs)), gen, recipe.colour_jitter)
            y = torch.cat(ys).to(dev)
            n_c = 0
            if len(multi):
                ua = rng.choice(
                    multi, size=min(recipe.consistency_batch, len(multi)), replace=False
                )
                ub = partners(groups, rng, ua)
                x = torch.cat(
                    [
                        x,
                        augment(
                            as_normalised(x_un[torch.from_numpy(ua)]), gen, recipe.colour_jitter
                        ),
                        augment(
                            as_normalised(x_un[torch.from_numpy(ub)]), gen, recipe.colour_jitter
                        ),
                    ]
                )
                n_c = len(ua)
            s = model(x.to(dev))
            rl = rank_loss(s[:n], y, recipe.rank_loss, recipe.rank_lambda, recipe.softrank_strength)
            ll = (
                rank_loss(
                    s[n : n + n_l],
                    y_lab,
                    recipe.rank_loss,
                    recipe.rank_lambda,
                    recipe.softrank_strength,
                )
                if n_l
                else torch.zeros((), device=dev)
            )
            cl = torch.zeros((), device=dev)
            if n_c:
                sa, sb = s[n + n_l : n + n_l + n_c], s[n + n_l + n_c :]
                cl = (sa - sb).pow(2).mean() / (torch.cat([sa, sb]).var() + 1e-4)
            loss = rl + recipe.rank_label_order * ll + recipe.year_consistency * cl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            history.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    "rank_loss": float(rl.detach()),
                    "label_order": float(ll.detach()),
                    "year_consistency": float(cl.detach()),
                }
            )
            last = step == recipe.steps - 1
            if selecting and ((step + 1) % recipe.eval_every == 0 or last):
                fig = selection()
                history[-1].update(fig)
                if best is None or fig["val_selection"] >= best[0]:
                    best = (fig["val_selection"], step, copy.deepcopy(model.state_dict()))
        if best is not None:
            model.load_state_dict(best[2])
            for h in history:
                h["selected"] = h["step"] == best[1]
            if best[1] < 0 and history:
                history[0]["start_selected"] = True
        if not recipe.freeze_bn:
            calib = torch.cat([pools[c] for c in used] + ([x_un] if x_un is not None else []))
            recalibrate_batchnorm(model, calib, batch_size=128)
    if history:
        history[0].update(prefit_info, **{f"start_{k}": v for k, v in start_fig.items()})
    model.eval()
    return model, history


def selected_entry(history: list[dict]) -> dict:
    """The history entry of the kept trained checkpoint (with its selection figures); {} when the
    untrained start was kept or nothing was selected."""
    return next((h for h in history if h.get("selected")), {})


def selected_step(history: list[dict]) -> int:
    """The step whose checkpoint was kept: -1 for the untrained start, the last step without selection."""
    if history and history[0].get("start_selected"):
        return -1
    return selected_entry(history).get("step", len(history) - 1)


def save_ranker(
    model: RankerModel,
    path: str | Path,
    kind: str = KIND,
    members: int | None = None,
    state: dict | None = None,
) -> Path:
    cfg = asdict(model.config)
    if members is not None:
        cfg["members"] = members
    return save_checkpoint(path, kind, cfg, state if state is not None else model.state_dict())


def ranker_from_checkpoint(
    path: str | Path, kind: str = KIND
) -> tuple[list[RankerModel], dict, int | None]:
    """Members (fresh, unloaded) + the state dict + the member count (None for one model)."""
    cfg, state = load_checkpoint(path, kind)
    members = cfg.pop("members", None)
    n = 1 if members is None else int(members)
    return [RankerModel(RankerConfig(**cfg)) for _ in range(n)], state, members
