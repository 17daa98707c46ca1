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
    real_read = tf.read_tile
    monkeypatch.setattr(tf, "read_tile", lambda p, *a: decoded.append(p) or real_read(p, *a))
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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, depth: int, rows: bytes = b"") -> bytes:
    """A PNG written by hand (Pillow writes no 16-bit RGB, nor a header alone)."""
    import struct
    import zlib

    head = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    body = _png_chunk(b"IDAT", zlib.compress(rows)) if rows else b""
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", head) + body + _png_chunk(b"IEND", b"")


def test_odd_files_are_reported_by_name_never_scored_nor_setting_the_size(tmp_path):
    """Found by review: the year's tile size was the first file's, so a 512 px tile at the west
    edge made all 256 px tiles 'wrong_size' (or, elsewhere, was shrunk and scored); a 16-bit
    PNG was read by its high bytes as a dark tile and scored; a mostly transparent tile was
    scored; a header claiming 20,000 px failed the whole year naming only its block."""
    folder = tmp_path / "tiles" / "2020"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for y in range(6000, 6003):
        for x in range(13000, 13003):
            Image.fromarray(rng.integers(0, 120, (256, 256, 3), dtype=np.uint8)).save(
                folder / f"{y}_{x}.png"
            )
    Image.fromarray(rng.integers(0, 120, (512, 512, 3), dtype=np.uint8)).save(
        folder / "6001_12999.png"  # first in tile order
    )
    dn = rng.integers(200, 3000, (256, 256, 3)).astype(">u2")  # Sentinel-2 numbers, 16 bit
    rows = b"".join(b"\x00" + dn[r].tobytes() for r in range(256))
    (folder / "6003_13000.png").write_bytes(_png(256, 256, 16, rows))
    rgba = np.concatenate(
        [
            rng.integers(0, 120, (256, 256, 3), dtype=np.uint8),
            np.full((256, 256, 1), 255, np.uint8),
        ],
        axis=2,
    )
    rgba[:, :200] = 0  # transparent black over 78 % of the tile
    Image.fromarray(rgba, "RGBA").save(folder / "6003_13001.png")
    (folder / "6003_13002.png").write_bytes(_png(20000, 20000, 8))
    index, store = _ingest(folder, tmp_path / "store")
    index = index.set_index("granule_id")
    assert store.px == 256 and len(store) == 9
    assert (index["status"] == "ok").sum() == 9
    odd = index.loc[["6001_12999", "6003_13000", "6003_13001", "6003_13002"]]
    assert odd["status"].tolist() == ["wrong_size", "corrupt", "blank", "corrupt"]
    assert (odd["image_row"] == -1).all()
    assert (
        "6001_12999.png: tile is 512x512 px, the folder's tiles are 256x256"
        in odd["problem"].iloc[0]
    )
    assert "6003_13000.png: 16-bit image" in odd["problem"].iloc[1]
    assert "6003_13001.png: no data (transparent) over 78%" in odd["problem"].iloc[2]
    assert odd["problem"].iloc[3].startswith("6003_13002.png: cannot decode image")


def test_a_year_with_no_square_tile_says_why_for_each_file(tmp_path):
    folder = tmp_path / "tiles" / "2020"
    folder.mkdir(parents=True)
    for x in (13000, 13001):
        Image.fromarray(np.zeros((256, 300, 3), np.uint8)).save(folder / f"6000_{x}.png")
    index, store = _ingest(folder, tmp_path / "store")
    assert len(store) == 0 and (index["status"] == "corrupt").all()
    assert index["problem"].str.contains("tile is 300x256 px, expected a square tile").all()
