"""The tile store: blocks written atomically, read by rows, never read before they are committed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.storage import tile_store as ts


def _images(n: int, px: int = 4, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.int64) % 256).astype(np.uint8)[
        :, None, None, None
    ] * np.ones((1, px, px, 3), np.uint8)


def _store(tmp_path, sizes=(3, 0, 5, 2)) -> ts.TileStore:
    blocks, start = [], 0
    for i, n in enumerate(sizes):
        blocks.append(
            ts.write_block(
                tmp_path, f"b{i}", _images(n, start=start), pd.DataFrame({"r": range(n)}), "d"
            )
        )
        start += n
    return ts.commit(tmp_path, blocks, 4)


def test_rows_read_across_blocks_in_any_order(tmp_path):
    store = _store(tmp_path)
    assert len(store) == 10 and store.shape == (10, 4, 4, 3)
    assert [int(v) for v in store[2:7][:, 0, 0, 0]] == [2, 3, 4, 5, 6]
    assert [int(v) for v in store[[9, 0, 4, 4]][:, 0, 0, 0]] == [9, 0, 4, 4]
    mask = np.zeros(10, bool)
    mask[[1, 8]] = True
    assert [int(v) for v in store[mask][:, 0, 0, 0]] == [1, 8]
    assert np.array_equal(np.asarray(store), _images(10))
    assert [r[1:] for r in store.block_ranges()] == [(0, 3), (3, 8), (8, 10)]
    batches = list(ts.iter_row_batches(store, 4))
    assert [len(b) for _, b in batches] == [4, 4, 2] and np.array_equal(
        np.concatenate([b for _, b in batches]), _images(10)
    )
    with pytest.raises(IndexError):
        store[[10]]


def test_an_uncommitted_folder_is_not_a_store(tmp_path):
    ts.write_block(tmp_path, "b0", _images(2), pd.DataFrame({"r": [0, 1]}), "d")
    with pytest.raises(ts.TileStoreError, match="no manifest.json"):
        ts.TileStore(tmp_path)


def test_a_block_is_finished_only_with_its_record_and_the_same_inputs(tmp_path):
    ts.write_block(tmp_path, "b0", _images(2), pd.DataFrame({"r": [0, 1]}), "digest-1")
    block, index = ts.finished_block(tmp_path, "b0", "digest-1")
    assert block.rows == 2 and index["r"].tolist() == [0, 1]
    assert ts.finished_block(tmp_path, "b0", "digest-2") is None  # other inputs: cut again
    ts.block_paths(tmp_path, "b0")[2].unlink()  # killed before its record: never finished
    assert ts.finished_block(tmp_path, "b0", "digest-1") is None


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_copy(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(ts.shutil, "copyfileobj", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        ts.write_block(tmp_path, "b0", _images(2), pd.DataFrame({"r": [0, 1]}), "d")
    assert list(tmp_path.iterdir()) == []


def test_commit_refuses_a_block_that_does_not_match(tmp_path):
    block = ts.write_block(tmp_path, "b0", _images(3), pd.DataFrame({"r": range(3)}), "d")
    with pytest.raises(ts.TileStoreError, match="expected 4 tiles"):
        ts.commit(tmp_path, [ts.Block("b0", 4, "d")], 4)
    ts.block_paths(tmp_path, "b0")[0].write_bytes(b"not an array")
    with pytest.raises(ts.TileStoreError, match="b0.npy: block unreadable"):
        ts.commit(tmp_path, [block], 4)
    assert not (tmp_path / ts.MANIFEST).exists()


def test_a_block_that_vanished_is_named_on_read(tmp_path):
    store = _store(tmp_path)
    ts.block_paths(tmp_path, "b2")[0].unlink()
    fresh = ts.TileStore(tmp_path)
    assert fresh[[0]].shape == (1, 4, 4, 3)
    with pytest.raises(ts.TileStoreError, match="b2.npy"):
        fresh[[4]]
    assert len(store) == 10


def test_other_generations_removed_and_years_read_as_one(tmp_path):
    keep = tmp_path / "gen-b"
    for gen in ("gen-a", "gen-b"):
        _store(tmp_path / gen)
    assert [p.name for p in ts.remove_other_generations(tmp_path, keep)] == ["gen-a"]
    rows = ts.StoreRows([ts.TileStore(keep), np.asarray(_images(2, start=100))])
    assert len(rows) == 12 and rows.shape == (12, 4, 4, 3)
    assert [int(v) for v in rows[[11, 0, 10]][:, 0, 0, 0]] == [101, 0, 100]


def test_legacy_single_stack_opens_memory_mapped(tmp_path):
    path = tmp_path / "2016.npy"
    np.save(path, _images(3))
    stack = ts.open_stack(path)
    assert isinstance(stack, np.memmap) and np.array_equal(stack[[2]], _images(3)[[2]])
    with pytest.raises(ts.TileStoreError, match="2017.npy"):
        ts.open_stack(tmp_path / "2017.npy")


def test_a_killed_writers_stale_pixels_are_swept_by_the_next_block(tmp_path):
    """SIGKILL runs no ``finally``: the pixels file a killed writer streamed into stays; the
    next writer in the folder removes it once it is stale (a live writer's file is young)."""
    import os
    import time

    stale = tmp_path / ".b0.123.abcd1234.pixels.tmp"
    stale.write_bytes(b"\0" * 1024)
    young = tmp_path / ".b1.124.abcd1235.pixels.tmp"
    young.write_bytes(b"\0")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    writer = ts.BlockWriter(tmp_path, "b2")
    writer.append(np.zeros((4, 4, 3), np.uint8))
    writer.finish(pd.DataFrame({"row": [0]}), "d")
    assert not stale.exists() and young.exists()
