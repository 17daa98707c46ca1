"""The scorer's training set: cluster images split into disjoint seeded roles, the labelled images'
roles (and the bottom cluster drawn from them), the tile-year sample, all at the tensor size."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.analysis.validation import development_index
from siscore_assets.core.model_settings import ModelSettings, recipe_settings
from siscore_assets.core.models import splits, training_data
from siscore_assets.core.models.scorer_training import TrainingInputs

BOTTOM = 9


def _tiles(n: int, tag: int, px: int = 8) -> np.ndarray:
    """Uniform tiles (red = ``tag``, green = row number): they keep their colour when resized."""
    imgs = np.zeros((n, px, px, 3), np.uint8)
    imgs[..., 0] = tag
    imgs[..., 1] = np.arange(n)[:, None, None]
    return imgs


def _ids(pools: dict[int, np.ndarray]) -> set[tuple[int, int]]:
    return {(int(i[0, 0, 0]), int(i[0, 0, 1])) for v in pools.values() for i in v}


def _pools() -> dict[int, np.ndarray]:
    return {0: _tiles(12, 0), 1: _tiles(10, 1), 2: _tiles(1, 2), 3: _tiles(0, 3)}


def _labelled(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Tiles tagged 100 + class; soft labels 0.8 on the class (urban, rural, uninhabited)."""
    cls = np.arange(n) % 3
    imgs = _tiles(n, 0)
    imgs[..., 0] = 100 + cls[:, None, None]
    labels = np.full((n, 3), 0.1)
    labels[np.arange(n), cls] = 0.8
    return imgs, labels


def test_cluster_roles_are_disjoint_seeded_and_empty_ones_dropped():
    m = ModelSettings(input_px=8, holdout_per_cluster=2, val_per_cluster=2, seed=4)
    ts = training_data.build_training_set(m, _pools(), "folder", bottom=BOTTOM)
    assert ts.origin == "folder" and ts.labelled is None and ts.unlabelled is None
    assert sorted(ts.train) == [0, 1, 2]  # a cluster without images is left out
    assert sorted(ts.val) == sorted(ts.test) == [0, 1]  # one image: nothing to hold out of it
    roles = [_ids(ts.train), _ids(ts.val), _ids(ts.test)]
    assert sum(len(r) for r in roles) == 23 and len(set.union(*roles)) == 23
    assert [len(ts.test[c]) for c in (0, 1)] == [2, 2] and len(ts.val[0]) == 2
    again = training_data.build_training_set(m, _pools(), "folder", bottom=BOTTOM)
    assert [_ids(again.train), _ids(again.val), _ids(again.test)] == roles
    other = training_data.build_training_set(
        m.with_overrides(seed=5), _pools(), "folder", bottom=BOTTOM
    )
    assert _ids(other.test) != roles[2]
    # the split is splits.cluster_splits' of the data seed
    _, _, test = splits.cluster_splits({c: v for c, v in _pools().items() if len(v)}, 2, 2, 4)
    assert _ids({c: v for c, v in test.items() if len(v)}) == roles[2]
    none = training_data.build_training_set(ModelSettings(input_px=8), _pools(), "x", bottom=9)
    assert none.val == {} and none.test == {} and _ids(none.train) == set().union(*roles)
    counts = ts.counts()
    assert counts["training_images"] == 15 and counts["validation_images"] == 4
    assert counts["test_images"] == 4 and counts["label_fit_images"] == 0


def test_labelled_roles_and_the_bottom_cluster_from_uninhabited_fit_rows():
    images, labels = _labelled()
    m = ModelSettings(input_px=8, habitation_holdout=0.2, label_selection_share=0.25, seed=2)
    fit, sel, held = splits.label_splits(labels, 0.2, 0.25, 2)
    index = development_index(labels)
    for bottom_from_labels in (False, True):
        mm = m.with_overrides(bottom_from_labels=bottom_from_labels)
        ts = training_data.build_training_set(
            mm, _pools(), "folder", bottom=BOTTOM, labelled=(images, labels)
        )
        np.testing.assert_array_equal(ts.labelled[0], images[fit])
        np.testing.assert_array_equal(ts.labelled[1], index[fit])
        np.testing.assert_array_equal(ts.selection[0], images[sel])
        np.testing.assert_array_equal(ts.held_images, images[held])
        np.testing.assert_array_equal(ts.held_labels, labels[held])
        assert (BOTTOM in ts.train) == bottom_from_labels
        if bottom_from_labels:  # only the fit rows' uninhabited images: never selection or held
            empty = fit[labels[fit].argmax(1) == training_data.UNINHABITED]
            np.testing.assert_array_equal(ts.train[BOTTOM], images[empty])
            assert (ts.train[BOTTOM][:, 0, 0, 0] == 102).all() and len(empty) > 0
        counts = ts.counts()
        assert (counts["label_fit_images"], counts["selection_images"]) == (len(fit), len(sel))
        assert counts["heldout_label_images"] == len(held) == 9  # 3 of each class's 13-14
    assert development_index(np.eye(3)).tolist() == [2.0, 1.0, 0.0]


def test_year_sample_returns_the_rows_of_the_asked_tiles():
    years = [(2016, ["a", "b", "c"], _tiles(3, 16)), (2017, ["c", "a"], _tiles(2, 17))]
    ts = training_data.build_training_set(
        ModelSettings(input_px=8), _pools(), "x", bottom=BOTTOM, years=iter(years)
    )
    assert ts.groups.tolist() == ["a", "b", "c", "c", "a"] and len(ts.unlabelled) == 5
    ids, imgs = ts.year_sample(2017, ["a", "b", "c"])  # b is not in 2017's sample
    assert ids == ["a", "c"]
    assert imgs[:, 0, 0, 0].tolist() == [17, 17] and imgs[:, 0, 0, 1].tolist() == [1, 0]
    ids, imgs = ts.year_sample(2016, ["c", "a"])
    assert ids == ["c", "a"] and imgs[:, 0, 0, 1].tolist() == [2, 0]
    assert ts.year_sample(2018, ["a"])[0] == [] and len(ts.year_sample(2018, ["a"])[1]) == 0
    assert ts.counts()["unlabelled_tile_years"] == 5


def test_every_image_is_resized_once_to_the_tensor_size():
    images, labels = _labelled(12)
    years = [(2016, ["a", "b"], _tiles(2, 16, px=64))]
    pools = {c: _tiles(6, c, px=64) for c in range(3)}
    for m, px in [
        (ModelSettings(input_px=16), 16),
        (recipe_settings("smoke", habitation_holdout=0.2, holdout_per_cluster=1), 32),
    ]:
        assert m.tensor_px == px
        ts = training_data.build_training_set(
            m, pools, "x", bottom=BOTTOM, labelled=(images, labels), years=years
        )
        arrays = [*ts.train.values(), *ts.val.values(), *ts.test.values(), ts.unlabelled]
        arrays += [ts.labelled[0], ts.selection[0], ts.held_images]
        assert all(a.shape[1:] == (px, px, 3) and a.dtype == np.uint8 for a in arrays)
        assert (ts.train[2][..., 0] == 2).all()  # uniform tiles stay their colour
    with pytest.raises(ValueError):
        training_data.build_training_set(
            ModelSettings(), {0: np.zeros((2, 8, 8, 3), np.float32)}, "x", bottom=BOTTOM
        )


def test_inputs_hand_the_trainer_every_role():
    images, labels = _labelled(30)
    years = [(2016, ["a"], _tiles(1, 16)), (2017, ["a"], _tiles(1, 17))]
    m = ModelSettings(input_px=8, val_per_cluster=2, bottom_from_labels=True)
    ts = training_data.build_training_set(
        m, _pools(), "x", bottom=BOTTOM, labelled=(images, labels), years=years
    )
    paths, rank = [[[BOTTOM], [0], [1]]], {BOTTOM: -1.0, 0: 0.0, 1: 1.0}
    data = ts.inputs(paths, rank)
    assert isinstance(data, TrainingInputs)
    assert data.pools is ts.train and data.val is ts.val and data.tier_paths is paths
    assert data.cluster_rank is rank and data.labelled is ts.labelled
    assert data.selection is ts.selection and data.unlabelled is ts.unlabelled
    assert data.groups.tolist() == ["a", "a"]


def test_pools_from_tiles_samples_each_cluster_over_the_years():
    y16 = (["a", "b", "c", "d"], np.array([0, 1, np.nan, 0]), _tiles(4, 16))
    y17 = (["a", "b", "d"], np.array([1, 1, 0]), _tiles(3, 17))
    pools, tiles = training_data.pools_from_tiles([y16, y17], seed=0)
    assert sorted(pools) == [0, 1]
    assert sorted(_ids({0: pools[0]})) == [(16, 0), (16, 3), (17, 2)]
    assert sorted(_ids({1: pools[1]})) == [(16, 1), (17, 0), (17, 1)]
    assert tiles[0].tolist() == ["a", "d", "d"] and tiles[1].tolist() == ["b", "a", "b"]
    capped, _ = training_data.pools_from_tiles([y16, y17], seed=0, max_per_cluster=2)
    assert [len(v) for v in capped.values()] == [2, 2]
    assert _ids(capped) <= _ids(pools)
    again, _ = training_data.pools_from_tiles([y16, y17], seed=0, max_per_cluster=2)
    assert _ids(again) == _ids(capped)


def test_a_place_checked_on_is_never_trained_on_in_another_year():
    """Clusters of the country's own tiles: splits are by place, and the validation and test
    places are left out of the year-consistency sample."""
    rng = np.random.default_rng(0)
    ids = [f"t{i}" for i in range(30)]
    pools, tiles = {}, {}
    for c in range(3):  # each cluster holds two years of ten places, some shared with others
        own = [ids[(10 * c + k) % 30] for k in range(12)]
        tiles[c] = np.asarray(own * 2, dtype=object)
        pools[c] = rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
    m = recipe_settings("smoke", holdout_per_cluster=4, val_per_cluster=2, input_px=8, texture_px=8)
    years = [(y, ids, rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)) for y in (2016, 2017)]
    ts = training_data.build_training_set(
        m, pools, "members", bottom=9, pool_tiles=tiles, years=years
    )
    roles = splits.tile_roles(tiles, 4, 2, m.seed)
    checked = {t for t, r in roles.items() if r != splits.TRAIN}
    assert checked and len(ts.test) == 3 and all(len(v) >= 4 for v in ts.test.values())
    assert set(ts.groups) == set(ids) - checked
    again = training_data.build_training_set(m, pools, "members", bottom=9, pool_tiles=tiles)
    for c in pools:
        np.testing.assert_array_equal(again.test[c], ts.test[c])
        for part in (ts.train, ts.val, ts.test):  # a cluster's rows, each in one part
            assert len(part.get(c, [])) <= len(pools[c])
        assert sum(len(p.get(c, [])) for p in (ts.train, ts.val, ts.test)) == len(pools[c])


def test_unlabelled_years_group_a_place_by_its_tile_id():
    imgs, groups = training_data.unlabelled_years(
        [(["a", "b"], _tiles(2, 1)), (["a"], _tiles(1, 2))]
    )
    assert groups.tolist() == ["a", "b", "a"] and imgs[:, 0, 0, 0].tolist() == [1, 1, 2]
    empty, none = training_data.unlabelled_years([])
    assert len(empty) == 0 and len(none) == 0


def test_year_holdout_places_never_enter_the_training_pools():
    """Clusters of the country's own tiles: a place validation's year agreement holds out keeps
    its test / validation role but none of its images is trained on (the leak of issue 25)."""
    ids = [f"t{i}" for i in range(20)]
    tiles = {c: np.asarray(ids * 2, dtype=object) for c in range(2)}
    pools = {c: _tiles(40, c) for c in range(2)}
    for c in pools:
        pools[c][..., 1] = np.arange(40)[:, None, None] % 20  # green = the place's number
    m = recipe_settings("smoke", holdout_per_cluster=4, val_per_cluster=2, input_px=8, texture_px=8)
    held = {"t1", "t2", "t3", "t5", "t8"}
    base = training_data.build_training_set(m, pools, "members", bottom=9, pool_tiles=tiles)
    ts = training_data.build_training_set(
        m, pools, "members", bottom=9, pool_tiles=tiles, year_held=held
    )
    trained = {f"t{int(i[0, 0, 1])}" for v in ts.train.values() for i in v}
    assert trained and not trained & held
    assert trained == {f"t{int(i[0, 0, 1])}" for v in base.train.values() for i in v} - held
    for c in pools:  # the checked splits are unchanged
        np.testing.assert_array_equal(ts.test[c], base.test[c])
        np.testing.assert_array_equal(ts.val[c], base.val[c])


def test_labelled_places_checked_on_never_train_in_the_pools_or_the_year_sample():
    """Labels of a country's own tile-years (each row's place given): the places of the
    selection and held-out label roles are not in any cluster's training split nor in the
    year sample, so `validation_internal`'s held-out labels are unseen by the scorer too (found
    by review: only Stage 1 left them out)."""
    m = ModelSettings(habitation_holdout=0.3, label_selection_share=0.2)
    places = np.array([f"t{i % 10}" for i in range(20)])  # 10 places, labelled in 2 years
    labels = np.tile([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]], (5, 1)).astype(float)
    images = np.arange(20, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    fit, sel, held = training_data.label_roles(m, labels, places)
    checked = set(places[np.concatenate([sel, held])])
    assert checked and not checked & set(places[fit])
    pools = {c: np.zeros((6, 8, 8, 3), np.uint8) for c in (0, 1)}
    pool_tiles = {
        0: np.array([f"t{i}" for i in range(6)], object),
        1: np.array([f"t{i}" for i in range(4, 10)], object),
    }
    years = [(y, [f"t{i}" for i in range(10)], np.zeros((10, 8, 8, 3), np.uint8)) for y in (16, 17)]
    ts = training_data.build_training_set(
        m,
        pools,
        "x",
        bottom=2,
        pool_tiles=pool_tiles,
        labelled=(images, labels, places),
        years=years,
    )
    role = splits.tile_roles(pool_tiles, m.holdout_per_cluster, m.val_per_cluster, m.seed)
    for c, ids in pool_tiles.items():
        trainable = [t for t in ids if role[t] == splits.TRAIN and t not in checked]
        assert len(ts.train.get(c, [])) == len(trainable)
    assert not checked & set(map(str, ts.groups))
    # without places (a labelled folder) the pools and the sample are as before
    plain = training_data.build_training_set(
        m, pools, "x", bottom=2, pool_tiles=pool_tiles, labelled=(images, labels), years=years
    )
    assert sum(map(len, plain.train.values())) > sum(map(len, ts.train.values()))


def test_a_cluster_folder_keeps_labelled_places_checked_on_out_of_the_year_sample():
    """A cluster folder (no pool tile ids) with labels of the country's own tile-years (``pretrain:
    kit``): the selection and held-out labelled places are left out of the year-consistency
    sample as with clusters of the country's own tiles (found by review: only that branch left
    them out); labels without places (the paper's labelled folder, PRK) leave the sample whole."""
    m = ModelSettings(habitation_holdout=0.3, label_selection_share=0.2)
    places = np.array([f"t{i % 10}" for i in range(20)])
    labels = np.tile([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]], (5, 1)).astype(float)
    images = np.zeros((20, 8, 8, 3), np.uint8)
    _, sel, held = training_data.label_roles(m, labels, places)
    checked = set(places[np.concatenate([sel, held])])
    assert checked
    pools = {c: _tiles(6, c) for c in (0, 1)}

    def years():
        return [(y, [f"t{i}" for i in range(10)], _tiles(10, y)) for y in (16, 17)]

    ts = training_data.build_training_set(
        m, pools, "folder", bottom=2, labelled=(images, labels, places), years=years()
    )
    assert set(map(str, ts.groups)) == {f"t{i}" for i in range(10)} - checked
    assert ts.spans[16][1] == ts.spans[17][1] and len(ts.unlabelled) == 2 * (10 - len(checked))
    plain = training_data.build_training_set(
        m, pools, "folder", bottom=2, labelled=(images, labels), years=years()
    )
    assert len(plain.unlabelled) == 20


def test_labelled_places_the_pools_check_on_never_train_through_their_labels():
    """Clusters of the country's own tiles and labels of the same tile-years (`pretrain: kit`):
    an image of a validation or test place was also a label-fit row (label order, pre-fit) and,
    uninhabited, a training image of the bottom cluster."""
    from siscore_assets.core.model_settings import recipe_settings

    m = recipe_settings("cpu", input_px=8, texture_px=16, habitation_holdout=0.2,
                        holdout_per_cluster=4)  # fmt: skip
    rng = np.random.default_rng(1)
    places = np.array([f"14/{i}/0" for i in range(120)], dtype=object)
    tiles = rng.integers(0, 255, (120, 16, 16, 3), dtype=np.uint8)
    pools = {c: tiles[40 * c : 40 * (c + 1)] for c in range(3)}
    pool_tiles = {c: places[40 * c : 40 * (c + 1)] for c in range(3)}
    labels = np.eye(3, dtype=np.float32)[np.repeat([0, 1, 2], 40)]
    ts = training_data.build_training_set(
        m, pools, "cluster_members", bottom=2, pool_tiles=pool_tiles,
        labelled=(tiles, labels, places),
    )  # fmt: skip

    def key(a):
        return {x.tobytes() for x in a}

    checked = set().union(*(key(v) for v in [*ts.val.values(), *ts.test.values()]))
    assert len(checked) > 10
    assert not checked & key(ts.labelled[0])
    assert not checked & key(ts.train[2])
