"""Every seeded split: the same inputs and seed give the same split, roles never overlap, and each
class or cluster keeps something to train on."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.models import splits


def _labels(counts: list[int]) -> np.ndarray:
    """One-hot soft labels, ``counts[k]`` rows of class k in order."""
    return np.repeat(np.eye(3), counts, axis=0)


def _numbered(pools: dict[int, int]) -> dict[int, np.ndarray]:
    """``n`` images per cluster, first pixel (cluster, index): a row tells where it came from."""
    out = {}
    for c, n in pools.items():
        imgs = np.zeros((n, 2, 2, 3), np.uint8)
        imgs[:, 0, 0, 0], imgs[:, 0, 0, 1] = c, np.arange(n)
        out[c] = imgs
    return out


def _rows(pool: np.ndarray) -> list[int]:
    return pool[:, 0, 0, 1].tolist()


# ---- labelled images ---------------------------------------------------------------------------


def test_stratified_holdout_is_stratified_seeded_and_keeps_a_row_per_class():
    labels = _labels([30, 15, 5])
    classes = labels.argmax(1)
    tr, ho = splits.stratified_split(classes, 0.2, np.random.default_rng(0))
    assert len(np.intersect1d(tr, ho)) == 0 and len(tr) + len(ho) == 50
    assert np.bincount(classes[ho], minlength=3).tolist() == [6, 3, 1]
    assert np.array_equal(ho, splits.stratified_split(classes, 0.2, np.random.default_rng(0))[1])
    assert len(splits.stratified_split(classes, 0.0, np.random.default_rng(0))[1]) == 0
    few = np.array([0, 1, 1])
    assert sorted(few[splits.stratified_split(few, 0.9, np.random.default_rng(0))[0]]) == [0, 1]
    with pytest.raises(ValueError, match="holdout share"):
        splits.stratified_split(classes, 1.0, np.random.default_rng(0))
    # label_splits' held rows are this split of the majority classes
    np.testing.assert_array_equal(splits.label_splits(labels, 0.2, 0.0, seed=0)[2], ho)


def test_label_splits_give_three_disjoint_stratified_roles_and_keep_the_holdout():
    """fit / selection / held cover every image once; a selection share never changes the
    reported held-out labels."""
    labels = _labels([50, 30, 20])
    fit, sel, held = splits.label_splits(labels, 0.2, 0.25, seed=3)
    assert sorted(np.concatenate([fit, sel, held]).tolist()) == list(range(100))
    np.testing.assert_array_equal(held, splits.label_splits(labels, 0.2, 0.0, seed=3)[2])
    np.testing.assert_array_equal(
        held, splits.stratified_split(labels.argmax(1), 0.2, np.random.default_rng(3))[1]
    )
    assert np.bincount(labels[sel].argmax(1), minlength=3).tolist() == [10, 6, 4]
    again = splits.label_splits(labels, 0.2, 0.25, seed=3)
    np.testing.assert_array_equal(sel, again[1])
    assert not np.array_equal(sel, splits.label_splits(labels, 0.2, 0.25, seed=4)[1])
    fit0, sel0, held0 = splits.label_splits(labels, 0.2, 0.0, seed=3)
    assert len(sel0) == 0 and len(fit0) == 80 and len(held0) == 20


def test_label_splits_by_place_keep_a_places_years_in_one_role():
    """Labels of a country's own tile-years: a place labelled in several years takes one role,
    so no held-out place has another year trained on (found by review: the kit's labels of one
    tile in 2016 and 2017 could land in held and fit)."""
    per_year = _labels([30, 20, 10])
    labels = np.concatenate([per_year, per_year])  # 60 places, each labelled in two years
    places = np.array([f"14/{i}/0" for i in range(60)] * 2)
    fit, sel, held = splits.label_splits(labels, 0.2, 0.25, seed=3, groups=places)
    assert sorted(np.concatenate([fit, sel, held]).tolist()) == list(range(120))
    roles = [set(places[r]) for r in (fit, sel, held)]
    assert not (roles[0] & roles[1] or roles[0] & roles[2] or roles[1] & roles[2])
    assert len(held) == 24 and len(roles[2]) == 12  # 20 % of the places, both years each
    # stratified by the place's label: 6 / 4 / 2 places of each class held
    assert np.bincount(labels[held].argmax(1), minlength=3).tolist() == [12, 8, 4]
    again = splits.label_splits(labels, 0.2, 0.25, seed=3, groups=places)
    for a, b in zip(again, (fit, sel, held), strict=True):
        np.testing.assert_array_equal(a, b)
    # one label a place: the same split as without places
    single = splits.label_splits(per_year, 0.2, 0.25, seed=3, groups=places[:60])
    for a, b in zip(single, splits.label_splits(per_year, 0.2, 0.25, seed=3), strict=True):
        np.testing.assert_array_equal(a, b)


# ---- cluster images ----------------------------------------------------------------------------


def test_cluster_holdout_takes_at_most_half_of_each_cluster_seeded():
    pools = _numbered({0: 10, 1: 3, 2: 0})
    kept, held = splits.cluster_holdout(pools, 4, seed=1)
    assert [len(held[c]) for c in (0, 1, 2)] == [4, 1, 0]  # at most half: 3 // 2 = 1
    for c in pools:
        assert sorted(_rows(kept[c]) + _rows(held[c])) == list(range(len(pools[c])))
        assert _rows(kept[c]) == sorted(_rows(kept[c]))  # each role keeps the images' order
    again = splits.cluster_holdout(pools, 4, seed=1)[1]
    assert all(np.array_equal(held[c], again[c]) for c in pools)
    assert not np.array_equal(held[0], splits.cluster_holdout(pools, 4, seed=2)[1][0])
    none = splits.cluster_holdout(pools, 0, seed=1)
    assert all(len(none[1][c]) == 0 and len(none[0][c]) == len(pools[c]) for c in pools)


def test_cluster_splits_train_validation_and_test_are_disjoint():
    pools = _numbered({0: 20, 1: 12})
    train, val, test = splits.cluster_splits(pools, 4, 3, seed=5)
    for c in pools:
        roles = [_rows(train[c]), _rows(val[c]), _rows(test[c])]
        assert [len(r) for r in roles] == [len(pools[c]) - 7, 3, 4]
        assert sorted(sum(roles, [])) == list(range(len(pools[c])))
    # the test split is the cluster holdout of the same seed: adding validation leaves it alone
    test_only = splits.cluster_splits(pools, 4, 0, seed=5)
    assert all(np.array_equal(test[c], test_only[2][c]) for c in pools)
    assert all(len(test_only[1][c]) == 0 for c in pools)


# ---- tile ids ----------------------------------------------------------------------------------


def test_holdout_ids_are_seeded_and_independent_of_order():
    ids = [f"t{i}" for i in range(30)]
    held = splits.holdout_ids(ids, 1 / 3, 0)
    assert len(held) == 10 and held == sorted(held) and set(held) <= set(ids)
    assert held == splits.holdout_ids(reversed(ids), 1 / 3, 0)
    assert held == splits.holdout_ids(ids + ids[:5], 1 / 3, 0)  # duplicates count once
    assert held != splits.holdout_ids(ids, 1 / 3, 1)
    assert splits.holdout_ids(["a", "b"], 0.5, 0) == []  # under 3 ids: none
    assert splits.holdout_ids(ids, 0.0, 0) == []


def test_sample_ids_is_bounded_and_seeded():
    ids = [f"t{i}" for i in range(100)]
    assert splits.sample_ids(ids[:5], 10, 0) == ids[:5]
    first = splits.sample_ids(ids, 10, 4)
    assert len(first) == 10 == len(set(first)) and set(first) <= set(ids)
    assert first == splits.sample_ids(ids, 10, 4)
    assert first != splits.sample_ids(ids, 10, 5)
