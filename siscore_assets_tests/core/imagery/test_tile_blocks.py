"""A tile folder cut block by block into the tile store: resumable, never indexing a half block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from siscore_assets.core.compute.blocks import BlockError, WorkerConfig
from siscore_assets.core.imagery import tile_blocks
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.storage import tile_store

ONE = WorkerConfig(workers=1, retries=0)


def _folder(root: Path) -> Path:
    """12 tiles over 3 zoom-13 parents, one of them blank, plus a broken file."""
    rng = np.random.default_rng(0)
    folder = root / "2019"
    folder.mkdir(parents=True)
    for k, (y, x) in enumerate([(6260 + j, 13990 + i) for j in range(4) for i in range(3)]):
        img = rng.integers(0, 200, (32, 32, 3), dtype=np.uint8)
        if k == 5:
            img[:] = 7  # blank
        Image.fromarray(img).save(folder / f"{y}_{x}.png")
    (folder / "6264_13990.png").write_bytes(b"\x89PNG broken")
    return folder


def _whole(files, problems, out: Path, workers: WorkerConfig = ONE, store_px: int | None = None):
    """The year cut into the store, its index batches joined into one frame (a small folder)."""
    store, batches = tile_blocks.cut_tile_folder(
        files,
        problems,
        out,
        z=14,
        max_cloud=0.15,
        store_px=store_px,
        block_zoom=13,
        workers=workers,
    )
    return pd.concat([f for f in batches if len(f)], ignore_index=True), store


def _ingest(folder: Path, out: Path, workers: WorkerConfig = ONE, store_px: int | None = None):
    files, problems = tf.list_year_tiles(folder, 14)
    return _whole(files, problems, out, workers, store_px)


def test_blocks_by_parent_tile_rows_in_block_order(tmp_path):
    index, store = _ingest(_folder(tmp_path / "tiles"), tmp_path / "store")
    assert [name for name, _ in store.blocks] == sorted(name for name, _ in store.blocks) and len(
        store.blocks
    ) == 5
    ok = index[index["status"] == "ok"]
    assert len(ok) == len(store) == 11 and sorted(ok["image_row"]) == list(range(11))
    assert set(index.loc[index["status"] != "ok", "status"]) == {"blank", "corrupt"}
    for r in ok.itertuples():  # each row holds its own file's pixels
        assert np.array_equal(store[int(r.image_row)], tf.read_rgb(Path(r.source_path)))


def test_store_px_resamples_and_native_keeps_the_files_size(tmp_path):
    folder = _folder(tmp_path / "tiles")
    assert _ingest(folder, tmp_path / "a")[1].px == 32
    index, store = _ingest(folder, tmp_path / "b", store_px=8)
    assert store.shape == (11, 8, 8, 3)


def test_a_killed_run_resumes_from_its_finished_blocks(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "tiles")
    real_finish, calls = tile_store.BlockWriter.finish, []

    def finish_then_die(writer, *args):
        if len(calls) == 2:
            raise OSError(f"disk full while writing {writer.name}")
        calls.append(writer.name)
        return real_finish(writer, *args)

    monkeypatch.setattr(tile_store.BlockWriter, "finish", finish_then_die)
    with pytest.raises(BlockError, match="block z13_6995_3132 failed .*disk full"):
        _ingest(folder, tmp_path / "store")
    gen = next((tmp_path / "store").iterdir())
    assert not (gen / tile_store.MANIFEST).exists()  # nothing committed: nothing indexes it
    assert not any(p.name.endswith(".tmp") for p in gen.iterdir())  # the failed block left nothing
    monkeypatch.setattr(tile_store.BlockWriter, "finish", real_finish)
    decoded = []
    real_read = tf.read_rgb
    monkeypatch.setattr(tf, "read_rgb", lambda p: decoded.append(p) or real_read(p))
    index, store = _ingest(folder, tmp_path / "store")
    assert store.folder == gen and len(store) == 11
    assert len(decoded) == 13 - 8  # the two finished blocks (4 files each) are not read again
    fresh_index, fresh = _ingest(folder, tmp_path / "fresh")
    assert np.array_equal(np.asarray(store), np.asarray(fresh))
    assert index.equals(fresh_index)


def test_a_file_that_vanished_midway_is_reported_not_scored(tmp_path):
    folder = _folder(tmp_path / "tiles")
    files, problems = tf.list_year_tiles(folder, 14)
    files[0].path.unlink()  # listed, then gone before it was read
    index, store = _whole(files, problems, tmp_path / "store")
    gone = index[index["source_path"] == str(files[0].path)]
    assert gone["status"].tolist() == ["corrupt"] and "cannot decode" in gone["problem"].iloc[0]
    assert len(store) == 10


def test_new_inputs_make_a_new_generation(tmp_path):
    folder = _folder(tmp_path / "tiles")
    _, first = _ingest(folder, tmp_path / "store")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(folder / "6260_13990.png")
    _, second = _ingest(folder, tmp_path / "store")
    assert first.folder != second.folder and (first.folder / tile_store.MANIFEST).exists()
    assert tile_store.remove_other_generations(tmp_path / "store", second.folder) == [first.folder]
