"""Training recipes for real imagery: the paper's settings (for a GPU) and a CPU recipe.

A country picks one with ``models: recipe: <name>`` in the countries file; an empty recipe keeps
the small-CNN path the synthetic country uses.  A recipe fixes both Stage-1 pretraining (the
ResNet-18 that becomes the uninhabited filter and the scorer's initialisation) and Stage-3 rank
training, so one name reproduces a whole run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Recipe:
    """Everything the ResNet-18 pretraining + rank training of one run depends on."""

    name: str
    # Stage 1: soft-label cross-entropy + mean-teacher consistency on unlabelled tiles.
    pretrain_px: int = 48
    pretrain_epochs: int = 3
    pretrain_batch: int = 64
    unlabelled_batch: int = 32  # unlabelled images per step (student and teacher each see one view)
    pretrain_lr: float = 1e-3
    consistency_weight: float = 12.5
    rampup_epochs: float = 3.0
    ema_decay: float = 0.99
    pretrain_grayscale: bool = False
    colour_jitter: float = 0.25  # strength of the scene augmentation (gain, haze, gamma)
    # Stage 3: rank training from the pretrained network.
    input_px: int = 64
    steps: int = 24
    per_cluster: int = 3  # images from every cluster of the path, each step
    lr: float = 3e-4
    rank_loss: str = "pairwise"  # "pairwise" (sigmoid, the paper's) or "softrank" (torchsort)
    rank_lambda: float = 30.0
    softrank_strength: float = 0.05
    cnn_grayscale: bool = False
    colour_stats: bool = True  # colour / texture statistics as extra inputs to the head
    texture_px: int = (
        256  # fine-texture statistics at this size (the zoom-14 tile's native 256 px); 0 = none
    )
    stat_init: bool = (
        True  # head starts at the ridge feature ranker fitted on the training clusters
    )
    stat_prefit: int = 1000  # then full-batch iterations fitting the statistics' MLP (+ year consistency); 0 = ridge
    stat_weight_decay: float = 1e-3
    stat_lr_scale: float = (
        1.0  # rank training's learning rate of the pre-fitted statistics branches, relative to lr
    )
    start_competes: bool = False  # the untrained (pre-fitted) start may be the kept checkpoint
    label_order: float = (
        1.0  # weight of the pre-fit's term ordering the labelled training images by their index
    )
    rank_label_order: float = (
        1.0  # the same term during rank training, on a batch of labelled images each step
    )
    label_batch: int = 24
    label_selection_share: float = 0.15  # labelled non-held-out images no stage trains on (pretraining included), for selection
    year_consistency: float = 1.0  # weight of the same-tile-other-year score agreement
    consistency_batch: int = 12
    freeze_bn: bool = False
    eval_every: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    bottom_from_labels: bool = True  # labelled uninhabited images form the bottom cluster
    zero_filter: bool = False  # post-hoc: the uninhabited filter's tiles get siScore 0

    @property
    def tensor_px(self) -> int:
        """The size the scorer reads its tiles at: the fine texture's when statistics are used."""
        return max(self.input_px, self.texture_px) if self.colour_stats else self.input_px

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


RECIPES: dict[str, Recipe] = {
    # Fits `make nk` (<= 20 min) on 2 CPU cores.
    # lr 1e-4 is the paper's Stage-3 rate; measured against 3e-4 on the selection split (RESULTS.md).
    "cpu": Recipe(name="cpu", lr=1e-4),
    # The paper's code (Stage1/1_pretrain.py, Stage3/4_siScore.py): 256 px grayscale, 200 epochs,
    # batch 64 / 16 images per cluster, lr 1e-4, EMA 0.999, ramp-up 20 epochs, BN frozen; for a GPU.
    "paper": Recipe(
        name="paper",
        pretrain_px=256,
        pretrain_epochs=200,
        pretrain_batch=64,
        unlabelled_batch=64,
        pretrain_lr=1e-4,
        consistency_weight=12.5,
        rampup_epochs=20.0,
        ema_decay=0.999,
        pretrain_grayscale=True,
        colour_jitter=0.4,
        input_px=256,
        steps=200 * 3,
        per_cluster=16,
        lr=1e-4,
        rank_loss="pairwise",
        rank_lambda=30.0,
        cnn_grayscale=True,
        colour_stats=False,
        texture_px=0,
        stat_init=False,
        year_consistency=0.0,
        freeze_bn=True,
        rank_label_order=0.0,
        label_selection_share=0.0,
        eval_every=30,
        seeds=(0,),
        zero_filter=True,
    ),
    # Seconds, not minutes: the end-to-end test of the recipe path on a tiny country (and a quick look).
    "smoke": Recipe(
        name="smoke",
        pretrain_px=16,
        pretrain_epochs=1,
        pretrain_batch=8,
        unlabelled_batch=4,
        input_px=16,
        texture_px=32,
        stat_prefit=50,
        steps=4,
        per_cluster=2,
        eval_every=2,
        consistency_batch=4,
        label_batch=6,
        seeds=(0, 1),
    ),
}


def check_store_px(recipe: Recipe, store_px: int | None, country: str) -> None:
    """A recipe with fine texture needs tiles kept at least at its ``texture_px``: upsampled 64 px
    tiles have no 10 m texture, and would be scored unlike the native-size cluster images."""
    if (
        store_px is not None
        and recipe.colour_stats
        and recipe.texture_px
        and store_px < recipe.texture_px
    ):
        raise ValueError(
            f"country {country}: recipe '{recipe.name}' reads fine texture at {recipe.texture_px} px, but "
            f"source.store_px is {store_px}: keep tiles at {recipe.texture_px} px (store_px: native) or use a "
            f"recipe with texture_px: 0"
        )


def get_recipe(name: str, **overrides) -> Recipe:
    """The named recipe, with ``overrides`` (benchmarks' ablations) applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    return replace(recipe, **overrides) if overrides else recipe
