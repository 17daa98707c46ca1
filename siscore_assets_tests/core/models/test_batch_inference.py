"""Scoring a tile store block by block: band means for the radiometric fit, and scores after a
year's transform equal to scoring the transformed images in memory."""

from __future__ import annotations

import numpy as np

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import band_means, radiometry, tile_blocks
from siscore_assets.core.models import batch_inference, habitation, scorer


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


def test_score_and_filter_scores_after_the_transform_and_filters_as_stored(tmp_path):
    """A granule-patch table's scores see the year's common radiometry as `siscore_grid`'s do
    (the same block scores); the filter's probabilities are the tiles' as stored."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 200, (13, 16, 16, 3), dtype=np.uint8)
    store = tile_blocks.store_stack(images, tmp_path / "store", rows_per_block=5)
    one = WorkerConfig(workers=1)
    path = scorer.save_scorer(
        scorer.ScorerModel(scorer.ScorerConfig(input_px=16)).eval(), tmp_path / "scorer.pt"
    )
    filter_path = habitation.save_habitation(
        habitation.HabitationModel(
            habitation.HabitationConfig(input_px=16, widths=(8, 16, 32, 64))
        ).eval(),
        tmp_path / "habitation.pt",
    )
    fix = radiometry.BandTransform((1.2, 0.9, 1.0), (5.0, -3.0, 0.0), 10)
    raw, probs = batch_inference.score_and_filter(
        path, filter_path, str(store.folder), store, None, one, transform=fix
    )
    expected = batch_inference.score_block(str(path), str(store.folder), 0, len(store), None, fix)
    assert np.allclose(raw, expected, atol=1e-9)
    as_stored = batch_inference.score_block(str(path), str(store.folder), 0, len(store), None)
    assert not np.allclose(raw, as_stored)
    plain_raw, plain_probs = batch_inference.score_and_filter(
        path, filter_path, str(store.folder), store, None, one
    )
    assert np.allclose(plain_raw, as_stored, atol=1e-9)
    assert np.array_equal(probs, plain_probs)
