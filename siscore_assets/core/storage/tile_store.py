"""The tile store: a country-year's usable tiles as blocks of memory-mapped ``.npy`` arrays.

Each block (e.g. the tiles of one zoom-8 parent tile) is one uint8 ``(n, px, px, 3)`` array file
written atomically (temporary name, fsync, rename), with its index rows beside it as Parquet
and a small JSON record written last: a block without its record was never finished and is
never read.  ``manifest.json``, written last of all, lists the blocks in order; the `patches`
table indexes the store it names, so no half-written block is ever indexed.

Why ``.npy`` blocks and not Zarr: tiles are read back whole and in row ranges, where an
uncompressed memory map costs no decoding on the scoring path (2 cores here) and needs no
extra dependency; native-resolution copies, which would need compression, are not kept for
sources that have files of their own to read back.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.storage.tables import sweep_tmp

MANIFEST = "manifest.json"
STORE_FORMAT = 1


class TileStoreError(RuntimeError):
    """A store that cannot be read: names the folder or block and what is wrong."""


def _fsync_write(path: Path, write) -> None:
    """Write through ``write(tmp)`` to a temporary sibling, fsync it, then rename onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(
        f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    )  # two writers never share one
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Block:
    """One finished block: its name, image rows, and the digest of the inputs it was cut from."""

    name: str
    rows: int
    digest: str


def block_paths(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """(images .npy, index .parquet, record .json) of block ``name``."""
    return folder / f"{name}.npy", folder / f"{name}.parquet", folder / f"{name}.json"


class BlockWriter:
    """One block written tile by tile: pixels go straight to a temporary file (a block never sits
    in memory: 4,096 native 256 px tiles are 800 MB), and ``finish`` turns it into the block's
    ``.npy`` (header + pixels, fsynced, renamed), its index rows and, last, its record."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = Path(folder), name
        self.folder.mkdir(parents=True, exist_ok=True)
        sweep_tmp(self.folder)  # a killed writer's pixels (up to 800 MB a block), once stale
        self._raw_path = self.folder / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.pixels.tmp"
        self._raw = open(self._raw_path, "wb")  # noqa: SIM115 - closed by finish() or abort()
        self.rows = 0
        self.px: int | None = None

    def append(self, image: np.ndarray) -> int:
        """Add one (px, px, 3) uint8 tile; returns its row in the block."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        if (
            img.ndim != 3
            or img.shape[-1] != 3
            or img.shape[0] != img.shape[1]
            or (self.px and img.shape[0] != self.px)
        ):
            raise ValueError(
                f"block {self.name}: tile of shape {img.shape}, expected ({self.px or 'px'}, px, 3)"
            )
        self.px = self.px or int(img.shape[0])
        self._raw.write(img.tobytes())
        self.rows += 1
        return self.rows - 1

    def finish(self, index: pd.DataFrame, digest: str, px: int | None = None) -> Block:
        self._raw.close()
        px = self.px or px or 1
        npy, parquet, record = block_paths(self.folder, self.name)
        shape = (self.rows, px, px, 3)

        def write_npy(tmp: Path) -> None:
            with open(tmp, "wb") as out, open(self._raw_path, "rb") as raw:
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "|u1", "fortran_order": False, "shape": shape}
                )
                shutil.copyfileobj(raw, out, 16 << 20)

        try:
            _fsync_write(npy, write_npy)
        finally:
            self._raw_path.unlink(missing_ok=True)
        _fsync_write(parquet, lambda tmp: index.to_parquet(tmp, index=False))
        block = Block(self.name, self.rows, digest)
        meta = {"rows": block.rows, "digest": digest, "shape": list(shape)}
        _fsync_write(record, lambda tmp: tmp.write_text(json.dumps(meta)))
        return block

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)


def block_digest(store: TileStore, name: str) -> tuple[int, str]:
    """(rows, digest of its inputs) of tile block ``name`` of a committed store: what a file
    derived from the block (band means, scorer parts) records, to know when it is stale."""
    rows = dict(store.blocks).get(name)
    if rows is None:
        raise ValueError(f"{store.folder}: no tile block {name!r} in the manifest")
    record = block_paths(store.folder, name)[2]
    try:
        digest = str(json.loads(record.read_text()).get("digest", ""))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{record}: tile block record unreadable ({exc})") from exc
    return int(rows), digest


def write_block(
    folder: Path, name: str, images: np.ndarray, index: pd.DataFrame, digest: str
) -> Block:
    """Store one block from an in-memory array: images, then its index rows, then the record
    that marks it finished."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"block {name}: images must be (n, px, px, 3) uint8, got {images.shape}")
    writer = BlockWriter(folder, name)
    try:
        for img in images:
            writer.append(img)
        return writer.finish(index, digest, px=int(images.shape[1]))
    except BaseException:
        writer.abort()
        raise


def finished_block(folder: Path, name: str, digest: str) -> tuple[Block, pd.DataFrame] | None:
    """The block and its index rows when a run already finished it from the same inputs
    (``digest``), else None: a killed run resumes without re-reading its finished blocks."""
    npy, parquet, record = block_paths(folder, name)
    if not (record.is_file() and npy.is_file() and parquet.is_file()):
        return None
    try:
        meta = json.loads(record.read_text())
        if meta.get("digest") != digest:
            return None
        rows = np.load(npy, mmap_mode="r").shape[0]
        if rows != meta["rows"]:
            return None
        return Block(name, int(rows), digest), pd.read_parquet(parquet)
    except (OSError, ValueError, KeyError):
        return None


def commit(folder: Path, blocks: Sequence[Block], px: int) -> TileStore:
    """Write the manifest listing ``blocks`` in order (after checking each block file's shape),
    and return the store.  Until this returns, the folder is not a store anyone reads."""
    for b in blocks:
        npy = block_paths(folder, b.name)[0]
        try:
            shape = np.load(npy, mmap_mode="r").shape
        except (OSError, ValueError) as exc:
            raise TileStoreError(f"{npy}: block unreadable ({exc})") from exc
        if shape[0] != b.rows or (b.rows and shape[1] != px):
            raise TileStoreError(f"{npy}: block holds {shape}, expected {b.rows} tiles of {px} px")
    manifest = {
        "format": STORE_FORMAT,
        "px": int(px),
        "blocks": [{"name": b.name, "rows": b.rows} for b in blocks],
    }
    folder.mkdir(parents=True, exist_ok=True)
    _fsync_write(folder / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest)))
    return TileStore(folder)


def remove_other_generations(year_folder: Path, keep: Path) -> list[Path]:
    """Delete every sibling store of ``keep`` under ``year_folder`` (earlier inputs' blocks)."""
    removed = []
    if not year_folder.is_dir():
        return removed
    for sub in year_folder.iterdir():
        if sub.is_dir() and sub.resolve() != keep.resolve():
            shutil.rmtree(sub, ignore_errors=True)
            removed.append(sub)
    return removed


class TileStore:
    """A committed store, read by rows: ``store[rows]`` reads only those rows' blocks (memory
    mapped), ``len(store)`` is its tile count; rows are global, in block order."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise TileStoreError(
                f"no tile store at {self.folder} (no {MANIFEST}): materialise 'patches'"
            ) from exc
        except (OSError, ValueError) as exc:
            raise TileStoreError(f"{path}: unreadable manifest ({exc})") from exc
        if manifest.get("format") != STORE_FORMAT:
            raise TileStoreError(
                f"{path}: store format {manifest.get('format')}, expected {STORE_FORMAT}"
            )
        self.px = int(manifest["px"])
        self.blocks = [(str(b["name"]), int(b["rows"])) for b in manifest["blocks"]]
        self.offsets = np.concatenate([[0], np.cumsum([r for _, r in self.blocks], dtype=np.int64)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.px, self.px, 3)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def block_ranges(self) -> list[tuple[str, int, int]]:
        """(block name, first row, end row) of every non-empty block, in order."""
        return [
            (name, int(self.offsets[i]), int(self.offsets[i + 1]))
            for i, (name, rows) in enumerate(self.blocks)
            if rows
        ]

    def _block(self, i: int) -> np.ndarray:
        """Block ``i`` memory-mapped.  Callers copy what they read and drop the map: pages of a
        map still held count in the process's RSS, so the store keeps none open."""
        npy = block_paths(self.folder, self.blocks[i][0])[0]
        try:
            arr = np.load(npy, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise TileStoreError(
                f"{npy}: block unreadable ({exc}); re-materialise 'patches'"
            ) from exc
        if arr.shape[0] != self.blocks[i][1]:
            raise TileStoreError(f"{npy}: {arr.shape[0]} tiles, manifest says {self.blocks[i][1]}")
        return arr

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as one in-memory array (across block edges)."""
        start, stop = max(0, int(start)), min(len(self), int(stop))
        if stop <= start:
            return np.zeros((0, self.px, self.px, 3), np.uint8)
        first = int(np.searchsorted(self.offsets, start, side="right") - 1)
        last = int(np.searchsorted(self.offsets, stop - 1, side="right") - 1)
        parts = []
        for i in range(first, last + 1):
            lo = max(start, int(self.offsets[i])) - int(self.offsets[i])
            hi = min(stop, int(self.offsets[i + 1])) - int(self.offsets[i])
            parts.append(self._block(i)[lo:hi])
        return np.array(parts[0]) if len(parts) == 1 else np.concatenate(parts)

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The given rows, in the given order (each block opened once)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.px, self.px, 3), np.uint8)
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"{self.folder}: row out of range 0..{len(self) - 1}")
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i in np.unique(which):
            sel = np.flatnonzero(which == i)
            out[sel] = self._block(int(i))[rows[sel] - self.offsets[i]]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            return (
                self.read_range(start, stop)
                if step == 1
                else self.take(np.arange(start, stop, step))
            )
        if isinstance(key, (int, np.integer)):
            return self.take([int(key)])[0]
        arr = np.asarray(key)
        if arr.dtype == bool:
            arr = np.flatnonzero(arr)
        return self.take(arr)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row in memory: only for small countries and tests (stages read by rows)."""
        out = self.read_range(0, len(self))
        return out.astype(dtype) if dtype is not None else out


def iter_row_batches(
    stack, batch_size: int, rows: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(row numbers, images) in batches of ``batch_size``: of every row, or of ``rows`` in order.
    Works on a :class:`TileStore` and on any array-like (a memory-mapped stack)."""
    n = len(stack)
    if rows is None:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield np.arange(start, stop), np.asarray(stack[start:stop])
        return
    rows = np.asarray(rows, dtype=np.int64)
    for start in range(0, len(rows), batch_size):
        sel = rows[start : start + batch_size]
        yield sel, np.asarray(stack[sel])


def open_stack(path: str | os.PathLike[str]):
    """The tile store at ``path``, or a legacy single ``.npy`` stack memory-mapped."""
    p = Path(path)
    if p.suffix == ".npy":
        if not p.is_file():
            raise TileStoreError(f"patch stack not found: {p} (materialise 'patches' first)")
        return np.load(p, mmap_mode="r")
    return TileStore(p)


class StoreRows:
    """Several stores (a country's years) read as one row sequence, lazily: ``rows[idx]`` reads
    only those rows, from whichever store holds each."""

    def __init__(self, stacks: Sequence):
        self.stacks = list(stacks)
        self.offsets = np.concatenate(
            [[0], np.cumsum([len(s) for s in self.stacks], dtype=np.int64)]
        )
        px = next((s.shape[1] for s in self.stacks if len(s)), 1)
        self.shape = (int(self.offsets[-1]), int(px), int(px), 3)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            rows = np.arange(*key.indices(len(self)))
        elif isinstance(key, (int, np.integer)):
            return self[np.array([int(key)])][0]
        else:
            rows = np.asarray(key)
            rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
        out = np.empty((len(rows),) + self.shape[1:], np.uint8)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i in np.unique(which):
            sel = np.flatnonzero(which == i)
            out[sel] = np.asarray(self.stacks[int(i)][rows[sel] - self.offsets[i]])
        return out
