"""A tile folder cut into independent blocks (the tiles of one parent tile at ``block_zoom``),
each decoded, checked and stored as one tile-store block: the unit a worker runs.

Blocks are named after their parent tile, so the same folder gives the same blocks whatever the
number of workers, and a killed run resumes from its finished blocks (same inputs, same digest).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.compute.blocks import WorkerConfig, run_blocks
from siscore_assets.core.imagery.grid import tile_id
from siscore_assets.core.imagery.patches import STATUS_CORRUPT, STATUS_OK, with_bounds
from siscore_assets.core.imagery.tile_folder import decode_tile, folder_tile_px
from siscore_assets.core.imagery.tile_listing import TileFile, TileListing
from siscore_assets.core.storage import tile_store

DEFAULT_BLOCK_ZOOM = (
    9  # zoom-9 parents: at most 32 x 32 = 1,024 zoom-14 tiles a block (balances 2+ workers)
)
#: Bumped when cutting changes, so a store cut by older code is never resumed from.
CUT_VERSION = "1"
INDEX_COLUMNS = ["granule_id", "z", "x", "y", "status", "problem", "image_row", "source_path"]


def block_name(x: int, y: int, z: int, block_zoom: int) -> str:
    shift = max(0, z - block_zoom)
    return f"z{min(z, block_zoom)}_{x >> shift}_{y >> shift}"


def plan_blocks(
    files: Sequence[TileFile], block_zoom: int = DEFAULT_BLOCK_ZOOM
) -> list[tuple[str, TileListing]]:
    """The files grouped by parent tile, blocks (by name) and files (by y, then x) in a fixed
    order; each block a compact listing of its own (what its task carries)."""
    listing = files if isinstance(files, TileListing) else TileListing.of(files)
    if not len(listing):
        return []
    shift = max(0, listing.z - block_zoom)
    bx, by = listing.x >> shift, listing.y >> shift
    pairs, inverse = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    pair_names = [
        block_name(int(x) << shift, int(y) << shift, listing.z, block_zoom) for x, y in pairs
    ]
    names = sorted(pair_names)
    rank = {name: k for k, name in enumerate(names)}
    pair_rank = np.array([rank[name] for name in pair_names], dtype=np.int64)
    block = pair_rank[inverse.reshape(-1)]
    order = np.lexsort((listing.x, listing.y, block))  # by block name, then y, then x
    groups = np.split(order, np.flatnonzero(np.diff(block[order])) + 1)
    return [(names[int(block[g[0]])], listing.take(g)) for g in groups]


def inputs_digest(files: Sequence[TileFile], **settings) -> str:
    """Digest of the files (path, size, modification time) and the cutting settings."""
    h = hashlib.sha1(f"{CUT_VERSION}|{tile_store.STORE_FORMAT}|{sorted(settings.items())}".encode())
    for f in files:
        try:
            st = os.stat(f.file)
            h.update(f"{f.file}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f.file}|missing\n".encode())
    return h.hexdigest()


def cut_block(
    folder: str,
    name: str,
    files: Sequence[TileFile],
    z: int,
    max_cloud: float,
    px: int,
    digest: str,
    native: int | None = None,
) -> tile_store.Block:
    """Decode, check and store one block; its index rows (block-local ``image_row``) are stored
    with it (:func:`tile_store.block_paths`), so a worker hands back only the block's record.

    Unreadable files are 'corrupt', constant tiles 'blank', white-out tiles 'cloudy' (checked at
    the file's own resolution); 'ok' tiles are resampled to ``px`` and stored.  A block already
    finished from the same inputs is returned as it is.
    """
    out = Path(folder)
    done = tile_store.finished_block(out, name, digest)
    if done is not None:
        return done[0]
    writer = tile_store.BlockWriter(out, name)  # tiles go to disk as they are decoded
    rows: list[dict] = []
    try:
        for f in files:
            row, img = decode_tile(f, z, max_cloud=max_cloud, px=px, native_px=native)
            if img is not None:
                row["image_row"] = writer.append(img)
            rows.append(row)
        return writer.finish(pd.DataFrame(rows, columns=INDEX_COLUMNS), digest, px)
    except BaseException:
        writer.abort()
        raise


def stack_blocks(stack: np.ndarray, rows_per_block: int = 4096) -> list[tuple[str, np.ndarray]]:
    """An in-memory stack (synthetic or STAC sources) cut into named blocks of row ranges."""
    return [
        (f"rows_{start:09d}", stack[start : start + rows_per_block])
        for start in range(0, len(stack), rows_per_block)
    ] or [("rows_000000000", stack[:0])]


def cut_tile_folder(
    files: Sequence[TileFile],
    problems: Sequence[dict],
    year_folder: Path,
    *,
    z: int,
    max_cloud: float,
    store_px: int | None,
    block_zoom: int,
    workers: WorkerConfig,
    log=None,
) -> tuple[tile_store.TileStore, Iterator[pd.DataFrame]]:
    """Every tile file of a year into a new store under ``year_folder`` (one generation folder
    per set of inputs), block by block on ``workers``: (committed store, index batches).

    The batches -- one a block, read back from the block's stored rows, then the misnamed files
    -- have one row per file ('corrupt' for a misnamed one), tile ids and bounds, ``image_row``
    global in the store (-1 for unusable tiles): a country-year's index is never one frame in
    memory.  Earlier generations are left for the caller to remove once the index naming this
    one is written.
    """
    native = folder_tile_px(files)  # the year's tile size: any other is 'wrong_size'
    px = store_px or native
    plan = plan_blocks(files, block_zoom)
    # Each file is stat-ed once: the generation's digest is made of its blocks' digests.
    block_digests = [
        inputs_digest(group, z=z, max_cloud=max_cloud, px=px, native=native) for _, group in plan
    ]
    digest = hashlib.sha1(
        f"{block_zoom}|{px}|".encode()
        + "".join(f"{name}:{d}\n" for (name, _), d in zip(plan, block_digests)).encode()
    ).hexdigest()
    folder = year_folder / digest[:16]
    misnamed = _problem_rows(problems, z)
    if px is None or not plan:  # nothing decodable at all: every file is reported corrupt
        store = tile_store.commit(folder, [], 0)
        return store, _undecodable_batches(files, z, misnamed)
    blocks = run_blocks(
        cut_block,
        [
            (str(folder), name, group, z, max_cloud, px, d, native)
            for (name, group), d in zip(plan, block_digests)
        ],
        [name for name, _ in plan],
        workers,
        tiles=len(files),
        log=log,
    )
    store = tile_store.commit(folder, blocks, px)
    return store, _block_batches(folder, blocks, z, misnamed)


def _problem_rows(problems: Sequence[dict], z: int) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "granule_id": Path(p["path"]).stem,
                "z": z,
                "x": -1,
                "y": -1,
                "status": STATUS_CORRUPT,
                "problem": p["problem"],
                "image_row": -1,
                "source_path": p["path"],
            }
            for p in problems
        ],
        columns=INDEX_COLUMNS,
    )


def _block_batches(
    folder: Path, blocks: Sequence[tile_store.Block], z: int, misnamed: pd.DataFrame
) -> Iterator[pd.DataFrame]:
    offset = 0
    for block in blocks:
        index = pd.read_parquet(tile_store.block_paths(folder, block.name)[1])
        ok = index["image_row"] >= 0
        index.loc[ok, "image_row"] += offset
        offset += block.rows
        yield finish_index(index, z)
    yield finish_index(misnamed, z)


def _undecodable_batches(
    files: Sequence[TileFile], z: int, misnamed: pd.DataFrame, rows_per_batch: int = 4096
) -> Iterator[pd.DataFrame]:
    for start in range(0, len(files), rows_per_batch):
        rows = []
        for f in files[start : start + rows_per_batch]:
            row, _ = decode_tile(f, z, max_cloud=1.0)  # each file's own reason
            if row["status"] == STATUS_OK:  # cannot happen: no file has a square header
                row.update(status=STATUS_CORRUPT, problem=f"{f.path.name}: cannot decode image")
            rows.append(row)
        yield finish_index(pd.DataFrame(rows, columns=INDEX_COLUMNS), z)
    yield finish_index(misnamed, z)


def finish_index(index: pd.DataFrame, z: int) -> pd.DataFrame:
    """Tile ids and bounds on an index frame (rows without a tile keep None / NaN)."""
    index = index.copy()
    index["image_row"] = index["image_row"].astype(np.int64)
    good = index["x"] >= 0
    index["tile_id"] = None
    index.loc[good, "tile_id"] = [
        tile_id(z, x, y)
        for x, y in zip(index.loc[good, "x"].tolist(), index.loc[good, "y"].tolist())
    ]
    return with_bounds(index)


def store_stack(
    stack: np.ndarray, year_folder: Path, *, rows_per_block: int = 4096
) -> tile_store.TileStore:
    """An in-memory stack (synthetic or STAC sources) as a committed store, one generation
    folder named after the stack's contents."""
    stack = np.ascontiguousarray(stack, dtype=np.uint8)
    digest = hashlib.sha1(
        f"{CUT_VERSION}|{stack.shape}".encode() + memoryview(stack).cast("B")
    ).hexdigest()
    folder = year_folder / f"s{digest[:15]}"
    blocks = []
    for name, part in stack_blocks(stack, rows_per_block):
        done = tile_store.finished_block(folder, name, digest)
        blocks.append(
            done[0]
            if done
            else tile_store.write_block(
                folder, name, part, pd.DataFrame({"row": np.arange(len(part))}), digest
            )
        )
    px = int(stack.shape[1]) if stack.ndim == 4 and len(stack) else 0
    return tile_store.commit(folder, blocks, px)
