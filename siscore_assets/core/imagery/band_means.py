"""A tile-year's per-tile band means, computed once per tile block and stored beside the store.

The common radiometry of a country (:mod:`radiometry`) is fitted on every configured year's
per-tile band means, and every yearly ``siscore_grid`` partition needs that fit: read from the
tiles each time, a country of Y years would read Y x Y years of tiles.  Here each block's means
are computed once (a 400,000-tile year: 9.6 MB of float64) and stored at
``<store>/band_means/<block>.npy`` with a JSON record written last naming the version, the rows
and the digest of the tile block they were computed from (the store's own record of its
inputs).  A block whose record is missing, unreadable, of another version, of other tiles or of
another size is recomputed, never read; arrays go to a temporary name unique to the writer and
are renamed, the record last, so a writer dying mid-block leaves nothing anyone reads, and two
partitions computing the same block at once each write a whole file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from siscore_assets.core.compute.blocks import WorkerConfig, run_blocks
from siscore_assets.core.imagery.radiometry import band_means
from siscore_assets.core.storage.files import write_unique
from siscore_assets.core.storage.tables import sweep_tmp
from siscore_assets.core.storage.tile_store import TileStore, block_digest, open_stack

MEANS_DIR = "band_means"
MEANS_VERSION = 1
BATCH = 256


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    base = folder / MEANS_DIR
    return base / f"{name}.npy", base / f"{name}.json"


def stored_block(folder: Path, name: str, rows: int, digest: str) -> np.ndarray | None:
    """The stored means of block ``name`` when they match its tiles (rows, digest, version),
    else None (missing or stale: to be recomputed)."""
    npy, record = _paths(folder, name)
    try:
        meta = json.loads(record.read_text())
        if meta != {"version": MEANS_VERSION, "tile_digest": digest, "rows": rows}:
            return None
        out = np.load(npy)
    except (OSError, ValueError):
        return None
    return out if out.shape == (rows, 3) and out.dtype == np.float64 else None


def means_block(store_path: str, name: str, batch_size: int = BATCH) -> int:
    """Compute and store the band means of tile block ``name`` unless matching ones are there
    (a killed run resumes); returns its rows."""
    store = TileStore(store_path)
    rows, digest = block_digest(store, name)
    if stored_block(store.folder, name, rows, digest) is not None:
        return rows
    npy, record = _paths(store.folder, name)
    record.unlink(missing_ok=True)  # a stale record never stands beside new means
    lo = int(store.offsets[[b for b, _ in store.blocks].index(name)])
    out = np.zeros((rows, 3), np.float64)
    for s in range(0, rows, batch_size):
        out[s : s + batch_size] = band_means(
            store.read_range(lo + s, lo + min(rows, s + batch_size))
        )

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # np.save(path) would add ".npy" to the temporary name
            np.save(fh, out)

    write_unique(npy, save)
    meta = {"version": MEANS_VERSION, "tile_digest": digest, "rows": rows}
    write_unique(record, lambda tmp: tmp.write_text(json.dumps(meta)))
    return rows


def year_band_means(store_path: str | Path, workers: WorkerConfig, log=None) -> np.ndarray:
    """(n, 3) per-tile band means of every row of the store, in row order: the stored blocks
    read, the missing or stale ones computed on ``workers`` and stored first.  A legacy single
    ``.npy`` stack (no blocks, no digests) is read and nothing is stored."""
    stack = open_stack(store_path)
    if not isinstance(stack, TileStore):
        parts = [band_means(np.asarray(stack[s : s + BATCH])) for s in range(0, len(stack), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 3))
    blocks = [(name, *block_digest(stack, name)) for name, _, _ in stack.block_ranges()]
    sweep_tmp(stack.folder / MEANS_DIR)
    todo = [n for n, rows, d in blocks if stored_block(stack.folder, n, rows, d) is None]
    if todo:
        run_blocks(
            means_block,
            [(str(stack.folder), n) for n in todo],
            todo,
            workers,
            tiles=sum(rows for n, rows, _ in blocks if n in set(todo)),
            log=log,
        )
    out = []
    for name, rows, digest in blocks:
        got = stored_block(stack.folder, name, rows, digest)
        if got is None:  # changed under us (the store re-cut meanwhile): never read stale means
            raise ValueError(
                f"{_paths(stack.folder, name)[1]}: band means do not match tile block {name!r}; "
                "re-materialise"
            )
        out.append(got)
    return np.concatenate(out) if out else np.zeros((0, 3))
