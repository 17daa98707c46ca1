"""Stored scorer parts: the same scores as the native tiles, and refused when they do not match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.compute.blocks import BlockError, WorkerConfig
from siscore_assets.core.imagery.radiometry import BandTransform
from siscore_assets.core.models import batch_inference
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models import scorer_parts as sp
from siscore_assets.core.storage import tile_store as ts
from siscore_assets_tests.core.models.test_fused_scoring import images, tiny_ensemble

HERE = WorkerConfig(workers=1, retries=1)
FIX = BandTransform((1.1, 0.95, 1.0), (3.0, -2.0, 0.0), 5)


@pytest.fixture()
def country(tmp_path):
    """A two-block store of 32 px tiles and a saved two-seed scorer reading them."""
    model = tiny_ensemble((0, 1))
    path = scorer_lib.save_scorer(model, tmp_path / "scorer.pt")
    imgs = images(10)
    store = tmp_path / "store"
    blocks = [
        ts.write_block(store, name, imgs[lo:hi], pd.DataFrame({"r": range(lo, hi)}), name)
        for name, lo, hi in (("b0", 0, 6), ("b1", 6, 10))
    ]
    ts.commit(store, blocks, 32)
    return str(path), str(store), imgs


def test_pack12_round_trips():
    v = np.random.default_rng(0).integers(0, 4096, (3, 10), dtype=np.uint16)
    packed = sp.pack12(v)
    assert packed.shape == (3, 15)
    np.testing.assert_array_equal(sp.unpack12(packed), v)


@pytest.mark.parametrize("transform", [None, FIX])
def test_scores_from_parts_are_the_native_scores(country, transform):
    path, store, imgs = country
    model = scorer_lib.load_scorer(path)
    spec = sp.ensure_parts(store, model.config, transform, HERE)
    assert spec.cnn_bytes == 8 * 8 * 3 * 3 // 2  # 12-bit sums of 4 x 4 pixels
    parts = sp.score_parts_block(path, store, 0, 10, None, transform)
    native = scorer_lib.score_images(model, transform.apply(imgs) if transform else imgs)
    assert np.abs(parts - native).max() <= 1e-6
    assert (np.argsort(parts) == np.argsort(native)).all()
    fused = batch_inference.score_block(path, store, 3, 9, None, transform)  # a batch of 6 rows
    fixed = transform.apply(imgs[3:9]) if transform else imgs[3:9]
    np.testing.assert_array_equal(fused, scorer_lib.score_images(model, fixed))


def test_missing_parts_are_named(country):
    path, store, _ = country
    with pytest.raises(sp.PartsError, match=r"b0\.json: statistics block missing"):
        sp.score_parts_block(path, store, 0, 10)


def test_parts_of_another_transform_or_version_are_not_read(country, monkeypatch):
    path, store, _ = country
    config = scorer_lib.load_scorer(path).config
    sp.ensure_parts(store, config, FIX, HERE)
    with pytest.raises(sp.PartsError, match="missing"):  # another transform: another folder
        sp.score_parts_block(path, store, 0, 10, None, None)
    spec = sp.PartsSpec.of(config, FIX)
    record = sp.parts_folder(store, spec) / "b1.json"
    meta = json.loads(record.read_text())
    meta["spec"]["version"] = 0
    record.write_text(json.dumps(meta))
    with pytest.raises(sp.PartsError, match=r"b1\.json: stale statistics block"):
        sp.score_parts_block(path, store, 0, 10, None, FIX)
    assert sp.score_parts_block(path, store, 0, 6, None, FIX).shape == (6,)  # b0 still fine
    sp.ensure_parts(store, config, FIX, HERE)  # recomputes b1 only
    assert sp.score_parts_block(path, store, 0, 10, None, FIX).shape == (10,)


def test_parts_of_other_tiles_or_another_size_are_refused(country):
    path, store, imgs = country
    config = scorer_lib.load_scorer(path).config
    spec = sp.ensure_parts(store, config, None, HERE)
    ts.write_block(Path(store), "b1", imgs[:4], pd.DataFrame({"r": range(4)}), "recut")
    with pytest.raises(sp.PartsError, match="computed from other tiles"):
        sp.score_parts_block(path, store, 0, 10)
    folder = sp.parts_folder(store, spec)
    meta = json.loads((folder / "b0.json").read_text())
    meta["rows"] = 5
    (folder / "b0.json").write_text(json.dumps(meta))
    with pytest.raises(sp.PartsError, match="statistics block of 5 tiles, the tile block has 6"):
        sp.score_parts_block(path, store, 0, 3)
    with pytest.raises(ValueError, match="tiles of 16 px, the recipe reads 32 px"):
        sp.compute_parts(images(2, px=16), spec)


def test_a_worker_dying_mid_block_is_retried_and_leaves_nothing_half_written(country, monkeypatch):
    path, store, _ = country
    config = scorer_lib.load_scorer(path).config
    real, calls = sp.cnn_parts, []  # per batch, whether or not the statistics are shared

    def dies_once(imgs, spec):
        calls.append(len(imgs))
        if len(calls) == 1:
            raise MemoryError("worker killed")
        return real(imgs, spec)

    monkeypatch.setattr(sp, "cnn_parts", dies_once)
    spec = sp.ensure_parts(store, config, None, HERE)  # retried: both blocks done
    assert sp.score_parts_block(path, store, 0, 10).shape == (10,)
    folder = sp.parts_folder(store, spec)
    for f in folder.glob("b0.*"):
        f.unlink()
    calls.clear()
    monkeypatch.setattr(sp, "cnn_parts", lambda imgs, spec: (_ for _ in ()).throw(OSError("died")))
    with pytest.raises(BlockError, match="block b0 failed"):
        sp.ensure_parts(store, config, None, WorkerConfig(workers=1, retries=0))
    assert sorted(p.name for p in folder.iterdir()) == ["b1.cnn.npy", "b1.json", "b1.stats.npy"]


def test_a_scorer_averaging_dihedral_views_scores_from_parts_as_from_tiles(tmp_path):
    """The views turn the CNN input, which the parts store: the same scores either way."""
    model = tiny_ensemble((0, 1), views=8)
    path = str(scorer_lib.save_scorer(model, tmp_path / "scorer.pt"))
    imgs = images(6)
    store = tmp_path / "store"
    ts.commit(store, [ts.write_block(store, "b0", imgs, pd.DataFrame({"r": range(6)}), "b0")], 32)
    spec = sp.ensure_parts(str(store), scorer_lib.load_scorer(path).config, None, HERE)
    assert spec == sp.PartsSpec.of(tiny_ensemble((0, 1)).config)  # views do not change the parts
    parts = sp.score_parts_block(path, str(store), 0, 6, None, None)
    native = scorer_lib.score_images(scorer_lib.load_scorer(path), imgs)
    assert np.abs(parts - native).max() <= 1e-6
    one = scorer_lib.score_images(tiny_ensemble((0, 1)), imgs)
    assert np.abs(native - one).max() > 1e-5


def test_a_tile_over_16x_the_input_is_not_scored_from_16_bit_sums(country):
    """255 x 32^2 overflows the stored 16-bit area sums: refused, and the native path scores."""
    from siscore_assets.core.models.scorer import ScorerConfig

    config = ScorerConfig(input_px=8, colour_stats=True, texture_px=256)
    assert config.tensor_px // config.input_px == 32
    with pytest.raises(ValueError, match="overflows"):
        sp.PartsSpec.of(config)
    store = ts.TileStore(country[1])  # 32 px tiles
    wide = ScorerConfig(input_px=1, colour_stats=True, texture_px=store.px)
    assert not sp.parts_apply(wide, store, None)
    fine = ScorerConfig(input_px=store.px // 2, colour_stats=True, texture_px=store.px)
    assert sp.parts_apply(fine, store, None)
