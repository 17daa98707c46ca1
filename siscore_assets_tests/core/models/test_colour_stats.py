"""The feature-ranker baseline: fitted on ranked clusters, saved and loaded exactly, scored block
by block from a tile store as in memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import tile_blocks
from siscore_assets.core.models import batch_inference, colour_stats


def _pools(rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Three clusters, greener (cluster 0) to greyer and brighter (cluster 2); 9 is the bottom."""
    out = {}
    for c, (grey, green) in enumerate([(60, 140), (110, 120), (170, 60)]):
        base = np.stack(
            [np.full((16, 16), grey), np.full((16, 16), green), np.full((16, 16), grey)], -1
        )
        out[c] = np.clip(base + rng.normal(0, 12, (12, 16, 16, 3)), 0, 255).astype(np.uint8)
    out[9] = np.clip(
        np.full((12, 16, 16, 3), 90) + rng.normal(0, 3, (12, 16, 16, 3)), 0, 255
    ).astype(np.uint8)
    return out


def test_the_ranker_orders_clusters_saves_and_scores_the_store_alike(tmp_path):
    rng = np.random.default_rng(0)
    pools = _pools(rng)
    ranker = colour_stats.fit_feature_ranker(pools, {0: 0.0, 1: 1.0, 2: 2.0, 9: -1.0}, px=16)
    means = [ranker.score(pools[c]).mean() for c in (9, 0, 1, 2)]
    assert means == sorted(means)  # bottom, then tier by tier
    path = tmp_path / "feature_ranker.json"
    colour_stats.save_feature_ranker(ranker, path)
    loaded = colour_stats.load_feature_ranker(path)
    images = np.concatenate([pools[c] for c in sorted(pools)])
    assert np.array_equal(loaded.score(images), ranker.score(images))
    store = tile_blocks.store_stack(images, tmp_path / "store", rows_per_block=10)
    batch_inference.ensure_feature_stats(str(path), str(store.folder), WorkerConfig(workers=1))
    got = batch_inference.map_store(
        batch_inference.feature_block,
        path,
        store.folder,
        store,
        None,
        WorkerConfig(workers=1),
        empty=np.zeros(0),
    )
    # from the stored statistics (equal; the product's rounding depends on the batch: 1e-16)
    np.testing.assert_allclose(got, ranker.score(images), rtol=0, atol=1e-12)


def test_a_ranker_file_of_other_statistics_is_refused(tmp_path):
    ranker = colour_stats.fit_feature_ranker(
        _pools(np.random.default_rng(1)), {0: 0.0, 2: 1.0}, px=16
    )
    path = tmp_path / "feature_ranker.json"
    colour_stats.save_feature_ranker(ranker, path)
    doc = json.loads(path.read_text())
    doc["features"] = doc["features"][:-1]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="feature_ranker.json: feature ranker of other statistics"):
        colour_stats.load_feature_ranker(path)
