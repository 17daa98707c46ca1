"""Every seeded split of the platform, in one place: which images and tiles a stage may train on,
select on, or only report.  The same inputs and seed always give the same split, and a held-out
row is never handed to a training stage.

Written by hand rather than with scikit-learn's splitters: these keep at least one training row
per class (``StratifiedShuffleSplit`` refuses tiny classes) and reproduce the landed splits.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

Pools = dict[int, np.ndarray]
TRAIN, VAL, TEST = "train", "validation", "test"


def cluster_holdout(pools: Pools, per_cluster: int, seed: int) -> tuple[Pools, Pools]:
    """(kept, held) per cluster: ``per_cluster`` images of each held out (at most half of it)."""
    rng = np.random.default_rng(seed)
    kept, held = {}, {}
    for c, imgs in sorted(pools.items()):
        k = min(per_cluster, len(imgs) // 2)
        order = rng.permutation(len(imgs))
        kept[c], held[c] = imgs[np.sort(order[k:])], imgs[np.sort(order[:k])]
    return kept, held


def cluster_splits(
    pools: Pools, test_per_cluster: int, val_per_cluster: int, seed: int
) -> tuple[Pools, Pools, Pools]:
    """(train, validation, test) per cluster: the test split is never trained on nor used for
    checkpoint selection; selection uses the validation split, carved from the rest."""
    rest, test = cluster_holdout(pools, test_per_cluster, seed)
    train, val = cluster_holdout(rest, val_per_cluster, seed + 1)
    return train, val, test


def tile_roles(
    tiles: dict[int, np.ndarray], test_per_cluster: int, val_per_cluster: int, seed: int
) -> dict[str, str]:
    """A role (:data:`TRAIN`, :data:`VAL`, :data:`TEST`) per tile id, for cluster images that are
    tile-years of the country's own tiles (``tiles``: each cluster's images' tile ids).

    Every year of a place shares its role, so nothing checked on has another year trained on.
    Places are visited in a seeded order; one joins the test split while a cluster it has images
    in still needs test images (at most half of a cluster, as :func:`cluster_holdout`), then
    the validation split likewise, else training.  A cluster may get a few more than asked."""
    counts = {c: len(v) for c, v in tiles.items()}
    need = {TEST: {}, VAL: {}}
    for c, n in counts.items():
        need[TEST][c] = min(test_per_cluster, n // 2)
        need[VAL][c] = min(val_per_cluster, (n - need[TEST][c]) // 2)
    rows: dict[str, dict[int, int]] = {}
    for c, ids in sorted(tiles.items()):
        for t in ids:
            per = rows.setdefault(str(t), {})
            per[c] = per.get(c, 0) + 1
    order = np.random.default_rng([seed, 11]).permutation(sorted(rows))
    roles = {}
    for t in order:
        role = TRAIN
        for split in (TEST, VAL):
            if any(need[split][c] > 0 for c in rows[t]):
                role = split
                for c, n in rows[t].items():
                    need[split][c] -= n
                break
        roles[str(t)] = role
    return roles


def stratified_split(
    classes: np.ndarray, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held) index arrays: ``share`` of each class's rows held out, drawn with ``rng``;
    each class keeps at least one row."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"holdout share must be in [0, 1), got {share}")
    classes = np.asarray(classes)
    held = []
    for cls in np.unique(classes):
        idx = rng.permutation(np.flatnonzero(classes == cls))
        held.extend(idx[: min(int(round(share * len(idx))), len(idx) - 1)].tolist())
    held_arr = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(classes)), held_arr), held_arr


def label_splits(
    soft_labels: np.ndarray,
    holdout_share: float,
    selection_share: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, selection, held) index arrays of the labelled images, stratified by majority class.

    ``held`` is reported only, never trained or selected on; ``selection`` is
    ``selection_share`` of the rest, only scored to choose checkpoints; ``fit`` is all any stage
    trains on (pretraining, the bottom cluster, label order).  With ``groups`` (a labelled
    tile-year's tile id: the same place in another year) whole places take one role, stratified
    by each place's summed labels: a held-out place has no other year trained on."""
    labels = np.asarray(soft_labels)
    if groups is None:
        majority = labels.argmax(axis=1)
        kept, held = stratified_split(majority, holdout_share, np.random.default_rng(seed))
        fit, sel = stratified_split(
            majority[kept], selection_share, np.random.default_rng([seed, 7919])
        )
        return kept[fit], kept[sel], held
    # places in order of first appearance: one label a place splits as without places
    row_group, names = pd.factorize(np.asarray(groups, dtype=str))
    summed = np.zeros((len(names), labels.shape[1]))
    np.add.at(summed, row_group, labels)
    fit_g, sel_g, held_g = label_splits(summed, holdout_share, selection_share, seed)
    role = np.empty(len(names), np.int8)
    role[fit_g], role[sel_g], role[held_g] = 0, 1, 2
    rows = role[row_group]
    return tuple(np.flatnonzero(rows == r) for r in (0, 1, 2))


def places_of(groups: np.ndarray | None, *rows: np.ndarray) -> frozenset[str]:
    """The places (``groups``: each labelled row's tile id) of the given label rows; none when
    the labels are images of their own (``groups`` None)."""
    if groups is None or not rows:
        return frozenset()
    return frozenset(str(t) for t in np.asarray(groups)[np.concatenate(rows)])


def holdout_ids(ids: Iterable[str], share: float, seed: int) -> list[str]:
    """A seeded ``share`` of ``ids`` (none under 3 ids), sorted: same inputs, same ids."""
    ids = sorted(set(ids))
    n = int(round(len(ids) * share)) if len(ids) >= 3 and share > 0 else 0
    if not n:
        return []
    return sorted(np.random.default_rng([seed, 2]).choice(ids, n, replace=False).tolist())


def sample_ids(ids: list[str], max_tiles: int, seed: int) -> list[str]:
    """``ids`` itself at or below ``max_tiles``, else a seeded sample of that many."""
    if len(ids) <= max_tiles:
        return list(ids)
    return np.random.default_rng(seed).choice(ids, max_tiles, replace=False).tolist()
