"""Stored band means: the numbers read from the tiles, computed once per tile block, and
recomputed (never read) when the block's tiles changed or the stored file does not match."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.compute.blocks import BlockError, WorkerConfig
from siscore_assets.core.imagery import band_means as bm
from siscore_assets.core.imagery import radiometry
from siscore_assets.core.storage import tile_store as ts

HERE = WorkerConfig(workers=1, retries=0)


def make_store(folder, images, digests=("d0", "d1")):
    cut = (("b0", 0, 7), ("b1", 7, len(images)))
    blocks = [
        ts.write_block(folder, name, images[lo:hi], pd.DataFrame({"r": range(lo, hi)}), d)
        for (name, lo, hi), d in zip(cut, digests)
    ]
    return ts.commit(folder, blocks, images.shape[1])


@pytest.fixture()
def store(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    return make_store(tmp_path / "store", images), images


def test_stored_means_are_the_tiles_means_and_are_computed_once(store, monkeypatch):
    st, images = store
    got = bm.year_band_means(st.folder, HERE)
    np.testing.assert_array_equal(got, radiometry.band_means(images))
    assert sorted(p.name for p in (st.folder / bm.MEANS_DIR).iterdir()) == [
        "b0.json", "b0.npy", "b1.json", "b1.npy",
    ]  # fmt: skip
    monkeypatch.setattr(bm, "band_means", lambda x: pytest.fail("tiles read again"))
    np.testing.assert_array_equal(bm.year_band_means(st.folder, HERE), got)


def test_means_of_other_tiles_are_recomputed_never_read(store, tmp_path):
    st, images = store
    bm.year_band_means(st.folder, HERE)
    # the store re-cut in place from other inputs: block b1 holds other tiles, another digest
    other = images.copy()
    other[7:] = 255 - other[7:]
    st = make_store(st.folder, other, digests=("d0", "d1-new"))
    np.testing.assert_array_equal(bm.year_band_means(st.folder, HERE), radiometry.band_means(other))
    # a stored file whose record names other tiles, or of the wrong size, is not read either
    npy, record = st.folder / bm.MEANS_DIR / "b0.npy", st.folder / bm.MEANS_DIR / "b0.json"
    np.save(npy, np.zeros((7, 3)))
    record.write_text(json.dumps({"version": bm.MEANS_VERSION, "tile_digest": "x", "rows": 7}))
    np.testing.assert_array_equal(bm.year_band_means(st.folder, HERE), radiometry.band_means(other))
    np.save(npy, np.zeros((6, 3)))
    record.write_text(json.dumps({"version": bm.MEANS_VERSION, "tile_digest": "d0", "rows": 7}))
    np.testing.assert_array_equal(bm.year_band_means(st.folder, HERE), radiometry.band_means(other))


def test_a_writer_dying_mid_block_leaves_nothing_half_written(store, monkeypatch):
    st, images = store
    real = bm.band_means
    monkeypatch.setattr(
        bm, "band_means", lambda x: (_ for _ in ()).throw(MemoryError("worker killed"))
    )
    with pytest.raises(BlockError, match="block b0 failed"):
        bm.year_band_means(st.folder, HERE)
    folder = st.folder / bm.MEANS_DIR
    assert not folder.exists() or not list(folder.iterdir())  # no temporary file, no record
    monkeypatch.setattr(bm, "band_means", real)
    np.testing.assert_array_equal(
        bm.year_band_means(st.folder, HERE), radiometry.band_means(images)
    )


def test_a_legacy_stack_is_read_and_nothing_stored(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "stack.npy", images)
    got = bm.year_band_means(tmp_path / "stack.npy", HERE)
    np.testing.assert_array_equal(got, radiometry.band_means(images))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.npy"]


def test_temporary_files_of_killed_writers_are_swept_live_ones_kept(store):
    st, _ = store
    folder = st.folder / bm.MEANS_DIR
    folder.mkdir()
    old, young = folder / ".b0.npy.1.dead.tmp", folder / ".b1.npy.2.live.tmp"
    for f in (old, young):
        f.write_bytes(b"partial")
    os.utime(old, (0, 0))
    bm.year_band_means(st.folder, HERE)
    assert not old.exists() and young.exists()
