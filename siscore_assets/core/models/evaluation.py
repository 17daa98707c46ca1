"""Internal validation of a trained scorer on what no stage trained or selected on: held-out human
labels, the test split's cluster order, and the year-to-year agreement of the tiles' scores
(on the tiles no cross-year term saw).  Each seed, their spread, the seed ensemble (siScore),
its raw output, the uninhabited filter applied post hoc, and the colour / texture feature
ranker are measured the same way, so the table compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from siscore_assets.core.analysis import validation
from siscore_assets.core.imagery.radiometry import BandTransform
from siscore_assets.core.models.habitation import (
    UNINHABITED_AT,
    HabitationModel,
    predict_habitation,
)
from siscore_assets.core.models.scorer import score_images
from siscore_assets.core.models.scorer_training import cluster_means
from siscore_assets.core.models.training_data import TrainingSet
from siscore_assets.core.ranking.tiers import cluster_order

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class InternalValidation:
    """The `validation_internal` rows (model, figure, value) and the headline figures."""

    table: pd.DataFrame
    siscore: dict[str, float]
    feature_ranker: dict[str, float]


@dataclass
class YearScores:
    """The tile-years a model is scored on for year agreement."""

    grids: Mapping[int, pd.DataFrame]  # siscore_grid per year: tile_id, score, raw_score, inhabited
    held_tiles: list[str]  # tiles no cross-year training term saw
    held_years: list[tuple[int, list[str], np.ndarray]]  # a bounded sample of them, with images
    #: each year's radiometric transform, as `siscore_grid` applied it (none: as read)
    transforms: Mapping[int, BandTransform | None] = field(default_factory=dict)

    def fixed(self, year: int, images: np.ndarray) -> np.ndarray:
        """``images`` of ``year`` as the grid scored them (its radiometric transform applied)."""
        fix = self.transforms.get(int(year))
        return fix.apply(images) if fix is not None else images

    def wide(self, column: str) -> pd.DataFrame:
        """A grid column as tiles x years."""
        return pd.DataFrame({y: g.set_index("tile_id")[column] for y, g in self.grids.items()})


def model_figures(
    score: ScoreFn,
    ts: TrainingSet,
    rank: dict[int, float],
    years: YearScores,
    years_frame: pd.DataFrame | None = None,
) -> dict[str, float]:
    """One model's figures; ``years_frame`` (tiles x years) when its scores are stored, else the
    training set's tile-year sample and the held-out sample are scored."""
    figs = validation.label_agreement(score(ts.held_images), ts.held_labels)
    means = {c: float(score(v).mean()) for c, v in ts.test.items()}
    figs["test_cluster_order"] = cluster_order(means, rank)
    if years_frame is None:
        columns = {}
        for y, g in years.grids.items():
            ids, images = ts.year_sample(int(y), list(g["tile_id"]))
            columns[y] = pd.Series(score(years.fixed(y, images)), index=ids)
        years_frame = pd.DataFrame(columns)
        held_frame = pd.DataFrame(
            {
                y: pd.Series(score(years.fixed(y, images)), index=ids)
                for y, ids, images in years.held_years
                if ids
            }
        )
    else:
        held_frame = years_frame.loc[years_frame.index.isin(years.held_tiles)]
    figs.update(validation.year_agreement(years_frame))
    if len(held_frame) >= 3 and held_frame.shape[1] >= 2:
        held = validation.year_agreement(held_frame)
        figs.update({f"heldout_{k}": v for k, v in held.items()})
    return figs


def internal_validation(
    country: str,
    ts: TrainingSet,
    rank: dict[int, float],
    years: YearScores,
    *,
    members: Iterable[tuple[int, object]],
    ensemble,
    habitation: HabitationModel,
    feature_ranker: ScoreFn,
) -> InternalValidation:
    """Every model's figures as rows, with the seeds' mean and sd."""
    rows: list[dict] = []

    def add(name: str, figs: dict[str, float]) -> dict[str, float]:
        rows.extend(
            {"country": country, "model": name, "figure": k, "value": float(v)}
            for k, v in figs.items()
        )
        return figs

    seed_rows = [
        add(f"seed{seed}", model_figures(lambda x, mm=mm: score_images(mm, x), ts, rank, years))
        for seed, mm in members
    ]
    add("seeds", validation.seed_spread(seed_rows))

    def ens(x: np.ndarray) -> np.ndarray:
        return score_images(ensemble, x)

    def zeroed(x: np.ndarray) -> np.ndarray:
        keep = predict_habitation(habitation, x)[:, 2] < UNINHABITED_AT
        return np.where(keep, ens(x), 0.0)

    raw = years.wide("raw_score")
    inhabited = years.wide("inhabited").fillna(False).astype(bool)
    siscore = add("siscore", model_figures(ens, ts, rank, years, years.wide("score")))
    add("raw_scorer", model_figures(ens, ts, rank, years, raw))
    add("zero_filter", model_figures(zeroed, ts, rank, years, zero_filtered(raw, inhabited)))
    feat = add("feature_ranker", model_figures(feature_ranker, ts, rank, years))
    return InternalValidation(pd.DataFrame(rows), siscore, feat)


def zero_filtered(raw: pd.DataFrame, inhabited: pd.DataFrame) -> pd.DataFrame:
    """Tiles x years of raw scores with 0 where the year's verdict is uninhabited; a tile-year
    not scored stays missing (found by review: its verdict, filled as "not inhabited", made it a
    score of 0 and entered the figures)."""
    return raw.where(inhabited.reindex_like(raw).fillna(False).astype(bool) | raw.isna(), 0.0)


def scorer_cluster_fit(
    model, images_by_cluster: dict[int, np.ndarray], rank: dict[int, float]
) -> tuple[pd.DataFrame, float]:
    """How a scorer orders the clusters: each cluster's mean score beside its tier rank, and
    :func:`ranking.cluster_order` of them."""
    means = cluster_means(model, images_by_cluster)
    fit = pd.DataFrame(
        {
            "cluster_id": list(means),
            "images": [len(images_by_cluster[c]) for c in means],
            "mean_score": list(means.values()),
            "tier_rank": [rank.get(c, np.nan) for c in means],
        }
    )
    return fit, cluster_order(means, rank)
