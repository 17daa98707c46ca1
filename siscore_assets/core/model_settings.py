"""A country's model settings: one typed, validated model for Stage 1 to Stage 3.

A *recipe* is a named preset of these same fields (``small``: the synthetic country's small,
fast scorer; ``cpu``: the real-imagery recipe that fits two CPU cores; ``paper``: the paper's
GPU settings; ``smoke``: seconds, for tests).  A country picks one with ``recipe:`` and may
override any field beside it, so one name reproduces a run and nothing branches on the name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from siscore_assets.core.countries_stac import SettingError

#: Old countries-file keys that still work, and the field each now sets.
RENAMED = {
    "scorer_steps": "steps",
    "scorer_lr": "lr",
    "scorer_seeds": "seeds",
    "habitation_input_px": "pretrain_px",
    "habitation_epochs": "pretrain_epochs",
    "per_cluster": "per_tier",
    "cnn_grayscale": "grayscale",
}

#: The other keys a rule across fields names: its problem (a :class:`SettingError` at the first
#: key) is reported at the first of them the countries file has, when that one came from a recipe.
ALSO_NAMED = {
    "from_pretrained": ("pretraining",),
    "eval_every": ("val_per_cluster", "holdout_per_cluster"),
    "colour_stats": ("normalize",),
}


def _alias(name: str) -> Any:
    old = [k for k, v in RENAMED.items() if v == name]
    return AliasChoices(name, *old) if old else None


class ModelSettings(BaseModel):
    """Everything Stage 1-3 of one country depend on; defaults are the ``small`` recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    recipe: str = "small"
    seed: int = Field(0, ge=0, description="data seed: splits, samples, tier paths")
    # Stage 1: the habitation model (uninhabited filter; the scorer's start with a ResNet).
    pretraining: Literal["supervised", "mean_teacher"] = "supervised"
    pretrain_px: int = Field(32, ge=8, le=1024, validation_alias=_alias("pretrain_px"))
    pretrain_epochs: int = Field(12, ge=1, validation_alias=_alias("pretrain_epochs"))
    pretrain_batch: int = Field(64, ge=1)
    unlabelled_batch: int = Field(32, ge=1)
    pretrain_lr: float = Field(1e-3, gt=0)
    consistency_weight: float = Field(12.5, ge=0)
    rampup_epochs: float = Field(3.0, ge=0)
    ema_decay: float = Field(0.99, ge=0, le=1)
    pretrain_grayscale: bool = False
    colour_jitter: float = Field(0.25, ge=0, le=1)
    habitation_holdout: float = Field(0.0, ge=0, lt=1)
    # Stage 1: clusters.
    k_range_urban: tuple[int, int] = (3, 8)
    k_range_rural: tuple[int, int] = (3, 8)
    folder_urban_clusters: int = Field(0, ge=0)
    deepcluster_rounds: int = Field(3, ge=1)
    deepcluster_epochs: int = Field(1, ge=1)
    cluster_sample: int = Field(20_000, ge=10)
    # Stage 1 on real imagery (core/models/scene_features.py): "stats" = the habitation filter
    # and the k-means space are scene descriptors, not the network's output; extra_images:
    # folders of more unlabelled images of the country (names discarded) for the cluster fit
    # and the scorer's cluster pools ("{root}/..." inside the tile-folder root).
    stage1_features: Literal["network", "stats"] = "network"
    stage1_extra_images: tuple[str, ...] = ()
    # Stage 2: data-guided POGs and the ensemble.
    guided_proxies: tuple[str, ...] = ("nightlight", "building_floor_area_m2", "built_up_share")
    guided_tolerance: float = Field(0.02, ge=0, le=1)
    guided_annotator: str = ""
    ensemble_tiers: int = Field(0, ge=0)
    ensemble_prune: int = Field(0, ge=0)
    # Stage 3: the scorer network.
    from_pretrained: bool = False
    input_px: int = Field(32, ge=8, le=1024)
    grayscale: bool = Field(False, validation_alias=_alias("grayscale"))
    normalize: Literal["fixed", "per_image"] = "fixed"
    colour_stats: bool = False
    texture_px: int = Field(0, ge=0, le=1024)
    # Stage 3: the training set.
    holdout_per_cluster: int = Field(0, ge=0, description="test images per cluster")
    val_per_cluster: int = Field(0, ge=0, description="selection images per cluster")
    label_selection_share: float = Field(0.0, ge=0, lt=1)
    bottom_from_labels: bool = False
    # Stage 3: the training loop.
    steps: int = Field(150, ge=0, validation_alias=_alias("steps"))
    lr: float = Field(1e-3, gt=0, validation_alias=_alias("lr"))
    seeds: tuple[int, ...] = Field((), validation_alias=_alias("seeds"))
    sampling: Literal["tier", "cluster"] = "tier"
    per_tier: int = Field(6, ge=1, validation_alias=_alias("per_tier"))
    max_batch: int = Field(96, ge=0, description="0: no cap")
    augmentation: Literal["photometric", "scene"] = "photometric"
    rank_loss: Literal["softrank", "pairwise"] = "softrank"
    rank_lambda: float = Field(30.0, gt=0)
    softrank_strength: float = Field(0.05, gt=0)
    alpha_linearity: float = Field(5.0, ge=0)
    mix_fraction: float = Field(0.25, ge=0, le=1)
    stat_init: bool = False
    stat_prefit: int = Field(0, ge=0)
    stat_weight_decay: float = Field(1e-3, ge=0)
    stat_lr_scale: float = Field(1.0, ge=0)
    start_competes: bool = False
    label_order: float = Field(0.0, ge=0)
    rank_label_order: float = Field(0.0, ge=0)
    label_batch: int = Field(24, ge=3)
    year_consistency: float = Field(0.0, ge=0)
    consistency_batch: int = Field(12, ge=1)
    freeze_bn: bool = False
    recalibrate_bn: bool = False
    eval_every: int = Field(0, ge=0)
    # Scoring.
    zero_filter: bool = True
    # Each year's tiles brought to the country's common radiometry before scoring (relative
    # radiometric normalisation on pseudo-invariant tiles, core/imagery/radiometry.py), so a
    # change of score is a change of the place, not of the year's light: docs/change.md.
    radiometry: Literal["none", "relative"] = "relative"
    # A place's score averaged over its image's dihedral views (1, 2, 4 or 8: turns and mirror
    # images; overhead imagery has no 'up'): a network trained with random turns still scores a
    # turned tile differently, and that arrangement noise swamps a few new roofs (docs/change.md).
    score_views: Literal[1, 2, 4, 8] = 1
    gradcam_tiles: int = Field(4, ge=0)
    # Start from a trained country (docs/new-country.md): ``start_from`` names it; ``start_use``
    # says how much of it is reused: ``habitation`` its Stage-1 network (no pretraining here),
    # ``init`` that and its scorer's trunk as the scorer's start (then trained on this country's
    # POG), ``as_is`` that and its scorer unchanged (zero-shot: no scorer training here).
    start_from: str = Field("", pattern=r"^([A-Z][A-Z0-9_]*)?$")
    start_use: Literal["habitation", "init", "as_is"] = "init"

    @model_validator(mode="before")
    @classmethod
    def _apply_recipe(cls, raw: Any) -> Any:
        """The named recipe's fields under the country's own (the country's win).  A problem is a
        :class:`SettingError` naming its key: the countries file reports it at that key's line."""
        if not isinstance(raw, dict):
            return raw
        name = raw.get("recipe", "small") or "small"
        if not isinstance(name, str) or name not in RECIPES:
            raise SettingError(
                f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}", ["recipe"]
            )
        given = dict(raw)
        both = sorted(old for old, new in RENAMED.items() if old in given and new in given)
        if both:
            raise SettingError(
                f"{both[0]} and {RENAMED[both[0]]} name the same setting: keep {RENAMED[both[0]]}",
                [both[0]],
            )
        # the country's own key wins over the preset's, by any name
        for old, new in RENAMED.items():
            if old in given and new in RECIPES[name]:
                given[new] = given.pop(old)
        return {**RECIPES[name], **given, "recipe": name}

    @model_validator(mode="after")
    def _consistent(self) -> ModelSettings:
        """Rules across fields; a problem is at the first key it names (then :data:`ALSO_NAMED`)."""
        for name in ("k_range_urban", "k_range_rural"):
            lo, hi = getattr(self, name)
            if not 2 <= lo <= hi:
                raise SettingError(
                    f"{name} must be [low, high] with 2 <= low <= high, got [{lo}, {hi}]", [name]
                )
        if self.from_pretrained and self.pretraining != "mean_teacher":
            raise SettingError(
                "from_pretrained needs pretraining: mean_teacher (a ResNet-18 start)",
                ["from_pretrained"],
            )
        if self.eval_every and self.holdout_per_cluster and not self.val_per_cluster:
            raise SettingError(
                "eval_every selects checkpoints on val_per_cluster images, and there are none: "
                "set val_per_cluster (holdout_per_cluster is the test split, never selected on)",
                ["eval_every"],
            )
        if self.colour_stats and self.normalize != "fixed":
            raise SettingError(
                "colour_stats needs normalize: fixed (the statistics read colour)", ["colour_stats"]
            )
        return self

    @property
    def tensor_px(self) -> int:
        """The size the scorer reads its tiles at: the fine texture's when statistics are used."""
        return max(self.input_px, self.texture_px) if self.colour_stats else self.input_px

    @property
    def uses_labels(self) -> bool:
        """Some stage of the scorer reads the labelled images (or holds some out to report)."""
        return bool(
            self.bottom_from_labels
            or self.label_order
            or self.rank_label_order
            or self.label_selection_share
            or self.habitation_holdout
        )

    @property
    def validates_internally(self) -> bool:
        """Held-out labels and a test split exist: `validation_internal` has what it needs."""
        return self.habitation_holdout > 0 and self.holdout_per_cluster > 0

    @property
    def scorer_seeds(self) -> tuple[int, ...]:
        """One scorer per seed (siScore = their mean); no seeds given: the data seed alone."""
        return tuple(self.seeds) or (self.seed,)

    def with_overrides(self, **changes: Any) -> ModelSettings:
        """A validated copy with ``changes`` applied (benchmarks' ablations, tests)."""
        changes = {RENAMED.get(k, k): v for k, v in changes.items()}  # old names too
        return type(self).model_validate({**self.model_dump(), **changes})


#: Named presets of :class:`ModelSettings` fields (what differs from the defaults, ``small``).
RECIPES: dict[str, dict[str, Any]] = {
    # The synthetic country's scorer: a ResNet-18 from scratch on 32 px tiles, tier sampling,
    # torchsort soft rank + the cut-mix linearity loss; seconds to minutes on a CPU.  Scored
    # over the 8 dihedral views: on SYN's benchmark every year pair's change follows the floor
    # area better (2016->2019 rho 0.28 -> 0.35, docs/change.md), levels unchanged.
    "small": {"score_views": 8},
    # Real imagery on 2 CPU cores (`make nk` <= 20 min): ResNet-18 mean-teacher pretraining, the
    # rank-trained scorer started from it with colour / texture statistics beside the CNN.
    # lr 1e-4 is the paper's Stage-3 rate (measured against 3e-4 on the selection split).
    "cpu": {
        "pretraining": "mean_teacher",
        "pretrain_px": 48,
        "pretrain_epochs": 3,
        "from_pretrained": True,
        "input_px": 64,
        "colour_stats": True,
        "texture_px": 256,
        "val_per_cluster": 5,
        "label_selection_share": 0.15,
        "bottom_from_labels": True,
        "steps": 24,
        "lr": 1e-4,
        "seeds": (0, 1, 2),
        "sampling": "cluster",
        "per_tier": 3,
        "max_batch": 0,
        "augmentation": "scene",
        "rank_loss": "pairwise",
        "alpha_linearity": 0.0,
        "stat_init": True,
        "stat_prefit": 1000,
        "label_order": 1.0,
        "rank_label_order": 1.0,
        "year_consistency": 1.0,
        "recalibrate_bn": True,
        "eval_every": 8,
        "zero_filter": False,
        # Years as read: on PRK the normalisation lowered year agreement (0.97 -> 0.88-0.90) and
        # doubled the deltas' noise floor, with no truth to show levels held (docs/change.md).
        "radiometry": "none",
        # One view: over 8 views PRK's trained seeds (with statistics) move by 0.0005-0.0008 on
        # average (at most 0.004) and agree across years exactly as before, for 8x the CNN at
        # country scale (python -m benchmarks.score_views).
        "score_views": 1,
    },
}
# The paper's code (Stage1/1_pretrain.py, Stage3/4_siScore.py): 256 px grayscale, 200 epochs,
# batch 64 / 16 images per cluster, lr 1e-4, EMA 0.999, ramp-up 20 epochs, BN frozen; a GPU's.
RECIPES["paper"] = {
    **RECIPES["cpu"],
    "pretrain_px": 256,
    "pretrain_epochs": 200,
    "unlabelled_batch": 64,
    "pretrain_lr": 1e-4,
    "rampup_epochs": 20.0,
    "ema_decay": 0.999,
    "pretrain_grayscale": True,
    "colour_jitter": 0.4,
    "input_px": 256,
    "grayscale": True,
    "colour_stats": False,
    "texture_px": 0,
    "stat_init": False,
    "stat_prefit": 0,
    "label_order": 0.0,
    "rank_label_order": 0.0,
    "label_selection_share": 0.0,
    "year_consistency": 0.0,
    "freeze_bn": True,
    "recalibrate_bn": False,
    "steps": 600,
    "per_tier": 16,
    "eval_every": 30,
    "seeds": (0,),
    "zero_filter": True,
}
# Seconds, not minutes: the end-to-end test of the real-imagery path on a tiny country.
RECIPES["smoke"] = {
    **RECIPES["cpu"],
    "pretrain_px": 16,
    "pretrain_epochs": 1,
    "pretrain_batch": 8,
    "unlabelled_batch": 4,
    "input_px": 16,
    "texture_px": 32,
    "stat_prefit": 50,
    "steps": 4,
    "per_tier": 2,
    "eval_every": 2,
    "consistency_batch": 4,
    "label_batch": 6,
    "seeds": (0, 1),
}


#: The settings that shape the Stage-1 network (its input, architecture and colour).
HABITATION_SHAPE = ("pretraining", "pretrain_px", "pretrain_grayscale")
#: The settings that shape the scorer network (``ScorerConfig``) and its seed members.
SCORER_SHAPE = ("input_px", "grayscale", "normalize", "colour_stats", "texture_px")


def start_from_problem(
    code: str, m: ModelSettings, source_code: str, source: ModelSettings
) -> str | None:
    """Why country ``code`` cannot reuse ``source_code``'s networks as ``m.start_use`` asks
    (one line naming both countries and each setting that differs), or None when it can: a
    network reads the input it was trained on, so the settings that shape it must match."""
    if source_code == code:
        return f"country {code}: start_from names the country itself"
    fields = list(HABITATION_SHAPE) + (list(SCORER_SHAPE) if m.start_use != "habitation" else [])
    if m.start_use == "as_is":
        fields.append("seeds")  # each seed's member is reused (validation reads them per seed)
    differ = [
        f"{f} {_shape(m, f)!r} vs {_shape(source, f)!r}"
        for f in fields
        if _shape(m, f) != _shape(source, f)
    ]
    if not differ:
        return None
    return (
        f"country {code}: cannot start_from {source_code} ({m.start_use}): the networks' input "
        f"differs ({code} vs {source_code}): {'; '.join(differ)}; make these settings alike or "
        "drop start_from"
    )


def _shape(m: ModelSettings, field: str) -> Any:
    """A setting as the network sees it (texture size is unused without statistics)."""
    if field == "texture_px" and not m.colour_stats:
        return 0
    if field == "seeds":
        return m.scorer_seeds
    return getattr(m, field)


def recipe_settings(name: str, **overrides: Any) -> ModelSettings:
    """The named recipe's settings, with ``overrides`` applied (validated)."""
    return ModelSettings.model_validate({"recipe": name, **overrides})


def check_store_px(m: ModelSettings, store_px: int | None, country: str) -> None:
    """Fine texture needs tiles kept at least at ``texture_px``: upsampled 64 px tiles have no
    10 m texture, and would be scored unlike the native-size cluster images."""
    if store_px is not None and m.colour_stats and m.texture_px and store_px < m.texture_px:
        raise ValueError(
            f"country {country}: the scorer reads fine texture at {m.texture_px} px, but "
            f"source.store_px is {store_px}: keep tiles at {m.texture_px} px (store_px: native) "
            "or set models.texture_px: 0"
        )
