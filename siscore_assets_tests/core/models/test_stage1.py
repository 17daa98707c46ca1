"""Stage 1 with ``stage1_features: stats``: descriptor k-means over the country's inhabited
tile-years and its extra unlabelled images, and the extra images' folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models import clustering, scene_features, stage1
from siscore_assets.core.models.habitation import HabitationConfig, HabitationModel


def _country(n: int = 40, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = np.concatenate(
        [rng.integers(lo, lo + 40, (n // 4, 16, 16, 3)) for lo in (0, 70, 140, 210)]
    ).astype(np.uint8)
    tiles = pd.DataFrame(
        {
            "country": "XX",
            "year": 2020,
            "tile_id": [f"t{i}" for i in range(n)],
            "z": 14,
            "x": np.arange(n),
            "y": 0,
            "inhabited": [i % 9 != 0 for i in range(n)],
            "urban": [i >= n // 2 for i in range(n)],
        }
    )
    return tiles, images


def _settings(**kw) -> ModelSettings:
    return ModelSettings(
        stage1_features="stats", k_range_urban=(2, 3), k_range_rural=(2, 3), cluster_sample=20, **kw
    )


def test_stats_clusters_fit_on_descriptors_with_the_extra_images_and_assign_the_rest():
    tiles, images = _country()
    model = HabitationModel(HabitationConfig(input_px=16, widths=(8, 16, 32, 64))).eval()
    desc = scene_features.descriptors(images[:8])
    extra = stage1.ExtraImages(
        desc, np.array([True] * 6 + [False] * 2), np.array([True, False] * 4)
    )
    m = _settings()
    res = stage1.cluster_country(tiles, images, model, m, "kmeans", country="XX", extra=extra)
    inhabited = tiles["inhabited"].to_numpy(bool)
    assert res.k == res.result.k_urban + res.result.k_rural and res.k >= 2
    assert (res.labels[~inhabited] == res.k).all() and (res.labels[inhabited] < res.k).all()
    # the extra images got clusters of their own group; the uninhabited ones the bottom
    assert res.extra_labels.tolist()[6:] == [res.k, res.k]
    # every cluster is listed, also one holding only extra images
    assert res.summary["cluster_id"].tolist() == list(range(res.k + 1))
    assert res.summary["n_extra_images"].sum() == 8
    ku = res.result.k_urban
    assert all((c < ku) == u for c, u in zip(res.extra_labels[:6], extra.urban[:6], strict=True))
    # tile-years outside the fit sample sit at their nearest centroid in descriptor space
    rest = np.setdiff1d(np.flatnonzero(inhabited), res.fit_rows)
    urban = tiles["urban"].to_numpy(bool)
    ref = clustering.assign_clusters(
        res.result,
        scene_features.cluster_space(scene_features.descriptors(images[rest])),
        urban[rest],
    )
    np.testing.assert_array_equal(res.labels[rest], ref)
    again = stage1.cluster_country(tiles, images, model, m, "kmeans", country="XX", extra=extra)
    np.testing.assert_array_equal(again.labels, res.labels)


def test_stats_with_deepcluster_is_a_clear_error():
    tiles, images = _country()
    model = HabitationModel(HabitationConfig(input_px=16, widths=(8, 16, 32, 64))).eval()
    with pytest.raises(ValueError, match="XX: stage1_features: stats clusters with k-means"):
        stage1.cluster_country(tiles, images, model, _settings(), "deepcluster", country="XX")


def test_extra_image_folders_are_read_recursively_and_a_missing_one_is_named(tmp_path):
    for sub, n in (("a/3", 2), ("b", 1)):
        (tmp_path / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / sub / f"{i}.png")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    paths = stage1.extra_image_paths([tmp_path / "a", tmp_path / "b"])
    assert [p.name for p in paths] == ["0.png", "1.png", "0.png"]
    with pytest.raises(FileNotFoundError, match="stage1_extra_images: .*nowhere is not a folder"):
        stage1.extra_image_paths([tmp_path / "nowhere"])
    imgs, labels = np.zeros((3, 8, 8, 3), np.uint8), np.eye(3)
    imgs[0], imgs[1] = 220, 120
    fit = scene_features.fit_habitation_stats(scene_features.descriptors(imgs), labels)
    extra = stage1.extra_images(paths, fit, tile_px=8)
    assert extra.desc.shape == (3, len(scene_features.DESCRIPTOR_NAMES))
    assert extra.inhabited.dtype == bool and not (extra.urban & ~extra.inhabited).any()


def test_an_extra_image_of_another_size_than_the_tiles_is_refused_naming_it(tmp_path):
    """Descriptors change with an image's size: an extra image not at the country's tile size is
    an error naming the file and both sizes, whether the folder holds one size (silently taken
    at that size before) or two (numpy's stack error, naming no file, before); found by review."""
    for name, px in (("a/0.png", 16), ("a/1.png", 16), ("b/small.png", 8)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((px, px, 3), 90, np.uint8)).save(tmp_path / name)
    imgs = np.zeros((3, 16, 16, 3), np.uint8)
    imgs[0], imgs[1] = 220, 120
    fit = scene_features.fit_habitation_stats(scene_features.descriptors(imgs), np.eye(3))
    same = stage1.extra_image_paths([tmp_path / "a"])
    assert len(stage1.extra_images(same, fit, tile_px=16).desc) == 2
    with pytest.raises(ValueError, match=r"a/0\.png: .*16x16 px.*the country's tiles are 32x32"):
        stage1.extra_images(same, fit, tile_px=32)
    mixed = stage1.extra_image_paths([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match=r"b/small\.png: .*8x8 px.*the country's tiles are 16x16"):
        stage1.extra_images(mixed, fit, tile_px=16)
