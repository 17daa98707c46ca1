"""Stage 1's scene descriptors and the habitation filter fitted on them."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.models import scene_features
from siscore_assets_tests.core.models.toys import toy_images


def _labelled(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Urban (built up), rural (some built) and uninhabited (none) toy tiles with soft labels."""
    cls = np.arange(n) % 3
    levels = np.array([0.9, 0.35, 0.0])[cls]
    imgs = toy_images(levels, seed, px=32)
    labels = np.full((n, 3), 0.0)
    labels[np.arange(n), cls] = 0.75
    labels[np.arange(n), (cls + 1) % 3] = 0.25
    return imgs, labels


def test_descriptors_are_named_deterministic_and_size_free():
    imgs, _ = _labelled(6)
    d = scene_features.descriptors(imgs)
    assert d.shape == (6, len(scene_features.DESCRIPTOR_NAMES)) and np.isfinite(d).all()
    np.testing.assert_array_equal(d, scene_features.descriptors(imgs))
    assert scene_features.cluster_space(d).shape == (6, scene_features.CLUSTER_COLUMNS)
    assert scene_features.descriptors(np.zeros((0, 8, 8, 3), np.uint8)).shape[0] == 0


def test_filter_separates_the_three_classes_and_reports_held_out_recall(tmp_path):
    imgs, labels = _labelled(90)
    desc = scene_features.descriptors(imgs)
    fit = scene_features.fit_habitation_stats(desc[:60], labels[:60])
    probs = fit.predict(imgs[60:])
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    held = scene_features.heldout_metrics(fit, desc[60:], labels[60:])
    assert held["accuracy"] >= 0.9 and held["urban_recall"] >= 0.9 and held["images"] == 30
    path = scene_features.save_stats(fit, tmp_path / "f.pkl")
    np.testing.assert_allclose(
        scene_features.load_stats(path).predict_desc(desc), fit.predict_desc(desc)
    )


def test_filter_without_a_class_and_a_foreign_file_are_clear_errors(tmp_path):
    imgs, labels = _labelled(30)
    desc = scene_features.descriptors(imgs)
    no_urban = labels.argmax(1) != 0
    with pytest.raises(ValueError, match=r"no majority image of class\(es\) \[0\]"):
        scene_features.fit_habitation_stats(desc[no_urban], labels[no_urban])
    other = tmp_path / "other.pkl"
    other.write_bytes(__import__("pickle").dumps({"kind": "something else"}))
    with pytest.raises(ValueError, match="not a habitation statistics filter"):
        scene_features.load_stats(other)
