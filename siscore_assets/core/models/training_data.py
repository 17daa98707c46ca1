"""What the scorer trains, selects and is validated on, as one :class:`TrainingSet`.

Cluster images come from wherever the country's clusters came from (a folder of ready-made
clusters, k-means or DeepCluster on its own tiles: ``cluster_members``); the labelled images are
split once into fit / selection / held rows (:func:`splits.label_splits`); a seeded sample of
tile-years, grouped by place, feeds the year-consistency term and the year-agreement figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from siscore_assets.core.analysis.validation import development_index
from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models import splits
from siscore_assets.core.models.common import resize_images
from siscore_assets.core.models.scorer_training import TrainingInputs

#: A cluster's training pool drawn from the country's own tiles is capped at this many images.
MAX_IMAGES_PER_CLUSTER = 400
UNINHABITED = 2  # the labels' column of the uninhabited class


def pools_from_tiles(
    years: Iterable[tuple[Sequence[str], np.ndarray, np.ndarray]],
    seed: int,
    max_per_cluster: int = MAX_IMAGES_PER_CLUSTER,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Training images per cluster from the country's own tiles, and each image's tile id.

    ``years`` yields, per year, every usable tile's id, its cluster id (NaN where the tile has
    none) and the year's image stack in the same order (a tile store: only the chosen rows are
    read); a cluster with more than ``max_per_cluster`` images over all years keeps a seeded
    sample.  The tile ids let the splits keep a place's years together."""
    rng = np.random.default_rng(seed)
    stacks: list = []
    names: list[np.ndarray] = []
    parts: dict[int, list[tuple[int, np.ndarray]]] = {}
    for ids, cid, stack in years:
        stacks.append(stack)
        names.append(np.asarray(ids, dtype=object))
        for c in np.unique(cid[~pd.isna(cid)]).astype(int):
            parts.setdefault(int(c), []).append((len(stacks) - 1, np.flatnonzero(cid == c)))
    pools, tiles = {}, {}
    for c, chunks in parts.items():
        year_of = np.concatenate([np.full(len(rows), y) for y, rows in chunks])
        row_of = np.concatenate([rows for _, rows in chunks])
        if len(row_of) > max_per_cluster:
            keep = np.sort(rng.choice(len(row_of), max_per_cluster, replace=False))
            year_of, row_of = year_of[keep], row_of[keep]
        years_in = np.unique(year_of)
        pools[c] = np.concatenate([np.asarray(stacks[y][row_of[year_of == y]]) for y in years_in])
        tiles[c] = np.concatenate([names[y][row_of[year_of == y]] for y in years_in])
    return pools, tiles


def unlabelled_years(
    years: Iterable[tuple[Sequence[str], np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Every tile-year's image and its tile id as group (same id = the same place, another year)."""
    imgs, groups = [], []
    for ids, stack in years:
        imgs.append(np.asarray(stack))
        groups.extend(str(t) for t in ids)
    if not imgs:
        return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, dtype=object)
    return np.concatenate(imgs), np.asarray(groups, dtype=object)


def label_roles(
    m: ModelSettings, labels: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, selection, held) rows of the labelled images (:func:`splits.label_splits`; by place
    with ``groups``, the labelled tile-years' tile ids): the one split the habitation model, the
    scorer, its validation and the feature ranker share."""
    return splits.label_splits(
        labels, m.habitation_holdout, m.label_selection_share, m.seed, groups=groups
    )


@dataclass
class TrainingSet:
    """A country's scorer data: cluster splits, labelled roles and a tile-year sample."""

    train: dict[int, np.ndarray]
    val: dict[int, np.ndarray]
    test: dict[int, np.ndarray]
    origin: str  # where the cluster images came from
    labelled: tuple[np.ndarray, np.ndarray] | None = None  # fit rows: (images, index)
    selection: tuple[np.ndarray, np.ndarray] | None = None  # scored for selection only
    held_images: np.ndarray | None = None  # reported only
    held_labels: np.ndarray | None = None
    unlabelled: np.ndarray | None = None
    groups: np.ndarray | None = None
    spans: dict[int, tuple[int, list[str]]] = field(default_factory=dict)  # year -> rows

    def inputs(self, tier_paths: list, cluster_rank: dict[int, float]) -> TrainingInputs:
        """What :func:`scorer_training.train_scorer` reads."""
        return TrainingInputs(
            pools=self.train,
            tier_paths=tier_paths,
            val=self.val,
            cluster_rank=cluster_rank,
            labelled=self.labelled,
            selection=self.selection,
            unlabelled=self.unlabelled,
            groups=self.groups,
        )

    def year_sample(self, year: int, tile_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The ids of ``tile_ids`` the year's sample holds (in their order) and their images."""
        if year not in self.spans or self.unlabelled is None:
            return [], np.zeros((0, 1, 1, 3), np.uint8)
        start, ids = self.spans[year]
        row = {t: start + i for i, t in enumerate(ids)}
        kept = [t for t in tile_ids if t in row]
        return kept, self.unlabelled[[row[t] for t in kept]]

    def counts(self) -> dict[str, int]:
        """Image counts per role, for an asset's metadata."""

        def total(pools: dict) -> int:
            return int(sum(len(v) for v in pools.values()))

        return {
            "training_images": total(self.train),
            "validation_images": total(self.val),
            "test_images": total(self.test),
            "label_fit_images": 0 if self.labelled is None else len(self.labelled[0]),
            "selection_images": 0 if self.selection is None else len(self.selection[0]),
            "heldout_label_images": 0 if self.held_images is None else len(self.held_images),
            "unlabelled_tile_years": 0 if self.unlabelled is None else len(self.unlabelled),
        }


def build_training_set(
    m: ModelSettings,
    pools: dict[int, np.ndarray],
    origin: str,
    *,
    bottom: int,
    pool_tiles: dict[int, np.ndarray] | None = None,
    labelled: tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, Any] | None = None,
    years: Iterable[tuple[int, list[str], np.ndarray]] | None = None,
    year_held: set[str] | None = None,
) -> TrainingSet:
    """Split ``pools`` (images by cluster) into train / validation / test, give the labelled
    images (``(images, soft labels)``) their roles, and stack the tile-year sample ``years``
    ((year, ids, images) per year); every image is resized once to the scorer's tensor size.

    With ``bottom_from_labels`` the fit rows' uninhabited images are the bottom cluster's
    training images: a folder of clusters has none of its own.  With ``pool_tiles`` (each
    image's tile id: clusters of the country's own tiles) the splits are by place, and the
    validation and test places are left out of the tile-year sample too, so no other year of a
    place that is checked on is trained on; ``year_held`` (the places validation's held-out year
    agreement reads) are dropped from the training split of such pools as well.  The labelled
    places of the selection and held-out roles, when ``labelled`` names each row's place (labels
    of the country's own tile-years), are dropped from such pools' training split and, whatever
    the clusters came from (a cluster folder too), from the tile-year sample; and the other way
    round, a labelled image whose place such pools check on (validation, test, held-out years)
    is dropped from the label fit rows."""
    px = m.tensor_px
    pools = {c: resize_images(v, px) for c, v in pools.items() if len(v)}
    roles_of_labels, checked_places = None, set()
    if labelled is not None and len(labelled[0]):
        images, labels, *groups = labelled  # (images, labels[, each row's place or None])
        place = groups[0] if groups else None
        roles_of_labels = label_roles(m, labels, place)
        # labelled places checked on (selection, held out) never train
        checked_places = set(splits.places_of(place, *roles_of_labels[1:]))
    # left out of the tile-year sample: the labelled places checked on (whatever the clusters
    # came from), and with pools of the country's own tiles their validation and test places
    held_tiles: set[str] = set(checked_places)
    if pool_tiles is None:
        train, val, test = splits.cluster_splits(
            pools, m.holdout_per_cluster, m.val_per_cluster, m.seed
        )
    else:
        tiles = {c: pool_tiles[c] for c in pools}
        role = splits.tile_roles(tiles, m.holdout_per_cluster, m.val_per_cluster, m.seed)
        train, val, test = (
            {c: v[np.array([role[str(t)] == r for t in tiles[c]], bool)] for c, v in pools.items()}
            for r in (splits.TRAIN, splits.VAL, splits.TEST)
        )
        held_tiles = {t for t, r in role.items() if r != splits.TRAIN} | checked_places
        # a year-holdout place, or a labelled place checked on, keeps its pool's test /
        # validation role and never trains
        never_train = set(year_held or ()) | checked_places
        if never_train:
            train = {
                c: pools[c][
                    np.array(
                        [role[str(t)] == splits.TRAIN and str(t) not in never_train for t in ids],
                        bool,
                    )
                ]
                for c, ids in tiles.items()
            }
    out = TrainingSet(
        train=train,
        val={c: v for c, v in val.items() if len(v)},
        test={c: v for c, v in test.items() if len(v)},
        origin=origin,
    )
    if roles_of_labels is not None:
        fit, sel, held = roles_of_labels
        if place is not None and pool_tiles is not None:
            # a labelled place the pools check on (validation, test) or whose years validation
            # compares never trains through its label either (label order, pre-fit, bottom pool)
            checked_on = {t for t, r in role.items() if r != splits.TRAIN} | set(year_held or ())
            fit = fit[np.array([str(place[i]) not in checked_on for i in fit], bool)]
        index = development_index(labels)
        if m.bottom_from_labels:
            empty = fit[labels[fit].argmax(axis=1) == UNINHABITED]
            out.train = {**out.train, bottom: resize_images(images[empty], px)}
        out.labelled = (resize_images(images[fit], px), index[fit])
        out.selection = (resize_images(images[sel], px), index[sel])
        out.held_images, out.held_labels = resize_images(images[held], px), labels[held]
    if years is not None:
        spans: dict[int, tuple[int, list[str]]] = {}

        def stacked() -> Iterable[tuple[list[str], np.ndarray]]:
            start = 0
            for year, ids, images in years:
                if held_tiles:
                    keep = [i for i, t in enumerate(ids) if t not in held_tiles]
                    ids, images = [ids[i] for i in keep], np.asarray(images)[keep]
                spans[year] = (start, list(ids))
                start += len(ids)
                yield ids, resize_images(images, px)

        out.unlabelled, out.groups = unlabelled_years(stacked())
        out.spans = spans
    return out
