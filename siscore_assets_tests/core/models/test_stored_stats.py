"""The store's shared colour / texture statistics: exactly the baselines' and the scorer parts'
values, computed once, and refused when they do not match their tiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.compute.blocks import BlockError, WorkerConfig
from siscore_assets.core.imagery.radiometry import BandTransform
from siscore_assets.core.models import batch_inference, colour_stats, scorer_parts
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models import stored_stats as st
from siscore_assets.core.storage import tile_store as ts
from siscore_assets_tests.core.models.test_fused_scoring import images, tiny_ensemble

HERE = WorkerConfig(workers=1, retries=1)
SPEC = st.StatsSpec(8, 32)


@pytest.fixture()
def store(tmp_path):
    """A two-block store of ten 32 px tiles."""
    imgs = images(10)
    folder = tmp_path / "store"
    blocks = [
        ts.write_block(folder, name, imgs[lo:hi], pd.DataFrame({"r": range(lo, hi)}), name)
        for name, lo, hi in (("b0", 0, 6), ("b1", 6, 10))
    ]
    ts.commit(folder, blocks, 32)
    return str(folder), imgs


@pytest.mark.parametrize("px, texture_px", [(8, 32), (16, 0), (64, 0)])
def test_the_statistics_are_image_stats_exactly(px, texture_px):
    imgs = images(40)  # more than one chunk
    got = st.compute_stats(imgs, st.StatsSpec(px, texture_px))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(
        got.astype(np.float64), colour_stats.image_stats(imgs, px, texture_px=texture_px)
    )


def test_stored_once_and_read_by_rows(store):
    folder, imgs = store
    st.ensure_stats(folder, SPEC, HERE)
    npy = st.stats_folder(folder, SPEC) / "b1.npy"
    stamp = npy.stat().st_mtime_ns
    st.ensure_stats(folder, SPEC, HERE)  # nothing to do: not rewritten
    assert npy.stat().st_mtime_ns == stamp
    expected = st.compute_stats(imgs, SPEC)[3:9]
    np.testing.assert_array_equal(st.read_stats(folder, SPEC, 3, 9), expected)


def test_missing_stale_or_resized_statistics_are_refused_by_name(store):
    folder, _ = store
    with pytest.raises(st.StatsError, match=r"b0\.json: statistics block missing"):
        st.read_stats(folder, SPEC, 0, 10)
    st.ensure_stats(folder, SPEC, HERE)
    sub = st.stats_folder(folder, SPEC)
    meta = json.loads((sub / "b1.json").read_text())
    (sub / "b1.json").write_text(json.dumps({**meta, "tile_digest": "other"}))
    with pytest.raises(st.StatsError, match=r"b1\.json: stale statistics block \(computed from"):
        st.read_stats(folder, SPEC, 0, 10)
    assert st.read_stats(folder, SPEC, 0, 6).shape == (6, len(SPEC.names))  # b0 still fine
    np.save(sub / "b1.npy", np.zeros((3, len(SPEC.names)), np.float32))
    (sub / "b1.json").write_text(json.dumps(meta))
    k = len(SPEC.names)
    with pytest.raises(st.StatsError, match=rf"b1\.npy: holds float32 \(3, {k}\)"):
        st.read_stats(folder, SPEC, 0, 10)
    st.ensure_stats(folder, SPEC, HERE)  # a writer recomputes what a reader refuses
    assert st.read_stats(folder, SPEC, 0, 10).shape == (10, k)


def test_a_worker_dying_mid_block_is_retried_and_leaves_nothing_half_written(store, monkeypatch):
    folder, _ = store
    real, calls = st.compute_stats, []

    def dies_once(imgs, spec):
        calls.append(len(imgs))
        if len(calls) == 1:
            raise MemoryError("worker killed")
        return real(imgs, spec)

    monkeypatch.setattr(st, "compute_stats", dies_once)
    st.ensure_stats(folder, SPEC, HERE)  # retried: both blocks done
    assert st.read_stats(folder, SPEC, 0, 10).shape == (10, len(SPEC.names))
    sub = st.stats_folder(folder, SPEC)
    for f in sub.glob("b0.*"):
        f.unlink()
    monkeypatch.setattr(st, "compute_stats", lambda imgs, spec: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(BlockError, match="block b0 failed"):
        st.ensure_stats(folder, SPEC, WorkerConfig(workers=1, retries=0))
    assert sorted(p.name for p in sub.iterdir()) == ["b1.json", "b1.npy"]


def test_another_spec_is_removed(store):
    folder, _ = store
    st.ensure_stats(folder, st.StatsSpec(16, 0), HERE)
    st.ensure_stats(folder, SPEC, HERE)
    assert [p.name for p in (st.stats_folder(folder, SPEC).parent).iterdir()] == [SPEC.digest]


def test_the_feature_ranker_scores_from_stored_statistics_as_from_tiles(store, tmp_path):
    folder, imgs = store
    rng = np.random.default_rng(0)
    k = len(SPEC.names)
    ranker = colour_stats.FeatureRanker(
        rng.normal(size=k), 0.1, rng.normal(size=k), rng.random(k) + 0.5, -2.0, 2.0, 8, 32
    )
    path = tmp_path / "ranker.json"
    colour_stats.save_feature_ranker(ranker, path)
    with pytest.raises(st.StatsError, match="missing"):
        batch_inference.feature_block(str(path), folder, 0, 10)
    batch_inference.ensure_feature_stats(str(path), folder, HERE)
    got = batch_inference.feature_block(str(path), folder, 2, 10)
    np.testing.assert_allclose(got, ranker.score(imgs[2:10]), rtol=0, atol=1e-12)


def test_scorer_parts_read_the_shared_statistics_only_when_scored_as_read(store, tmp_path):
    folder, imgs = store
    model = tiny_ensemble((0, 1))
    path = str(scorer_lib.save_scorer(model, tmp_path / "scorer.pt"))
    spec = scorer_parts.PartsSpec.of(model.config)
    assert scorer_parts.shared_stats(spec) == SPEC
    fix = BandTransform((1.1, 0.95, 1.0), (3.0, -2.0, 0.0), 5)
    assert scorer_parts.shared_stats(scorer_parts.PartsSpec.of(model.config, fix)) is None
    scorer_parts.ensure_parts(folder, model.config, None, HERE)
    shared = st.read_stats(folder, SPEC, 0, 10)  # computed by the parts, for the baselines too
    _, stats = scorer_parts.read_parts(folder, spec, 0, 10)
    np.testing.assert_array_equal(stats, shared)
    np.testing.assert_array_equal(stats, scorer_parts.compute_parts(imgs, spec)[1])
    parts = scorer_parts.score_parts_block(path, folder, 0, 10)
    assert np.abs(parts - scorer_lib.score_images(model, imgs)).max() <= 1e-6


def test_an_edit_of_the_statistics_code_makes_stored_blocks_stale(store, monkeypatch):
    """A change of the code that computes the statistics (not only a version bump) names other
    blocks: the stored ones are never read for it, and the scorer parts that copy them follow."""
    from siscore_assets.core.models import scorer_parts as sp
    from siscore_assets.core.models.scorer import ScorerConfig

    folder, _ = store
    st.ensure_stats(folder, SPEC, HERE)
    parts_before = sp.PartsSpec.of(ScorerConfig()).digest
    assert st.read_stats(folder, SPEC, 0, 10).shape[0] == 10
    monkeypatch.setattr(st, "stats_code", lambda: "edited")
    assert sp.PartsSpec.of(ScorerConfig()).digest != parts_before
    with pytest.raises(st.StatsError, match=r"b0\.json: statistics block missing"):
        st.read_stats(folder, SPEC, 0, 10)
