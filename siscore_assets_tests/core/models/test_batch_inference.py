"""Scoring a tile store block by block: band means for the radiometric fit, and scores after a
year's transform equal to scoring the transformed images in memory."""

from __future__ import annotations

import numpy as np

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import band_means, radiometry, tile_blocks
from siscore_assets.core.models import batch_inference, scorer


def test_band_means_and_transformed_scores_match_memory(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, (23, 16, 16, 3), dtype=np.uint8)
    store = tile_blocks.store_stack(images, tmp_path / "store", rows_per_block=10)
    one = WorkerConfig(workers=1)
    means = band_means.year_band_means(store.folder, one)
    assert np.allclose(means, radiometry.band_means(images))
    model = scorer.ScorerModel(scorer.ScorerConfig(input_px=16)).eval()
    path = scorer.save_scorer(model, tmp_path / "scorer.pt")
    fix = radiometry.BandTransform((1.2, 0.9, 1.0), (5.0, -3.0, 0.0), 10)
    got = batch_inference.map_store(
        batch_inference.score_block, path, store.folder, store, None, one,
        empty=np.zeros(0), extra=(fix,),
    )  # fmt: skip
    loaded = scorer.load_scorer(path, device="cpu")
    assert np.allclose(got, scorer.score_images(loaded, fix.apply(images)), atol=1e-6)
    plain = batch_inference.map_store(
        batch_inference.score_block, path, store.folder, store, None, one, empty=np.zeros(0)
    )
    assert not np.allclose(plain, got)
