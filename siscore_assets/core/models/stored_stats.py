"""A tile-year's colour / texture statistics, computed once per tile block and stored beside the
tile store.

Three readers want the same per-tile statistics at the tile's native 256 px (the costly part of
reading a tile): the feature-ranker and ordinal-regression baselines, and the ``cpu`` recipe's
scorer parts when the year is scored as read (no radiometric transform).  Computed by each, a
country-year's tiles went through the 256 px statistics three times (on the 32,578-tile, 4-year
benchmark country, most of the chain's wall time).  Here a block's statistics are computed once
(float32, ~100 bytes a tile) and stored at ``<store>/stats/<spec digest>/<block>.npy`` with a
JSON record written last naming the spec, the version, the digest of the code that computes them
(:func:`stats_code`: an edit counts without a version bump) and of the tile block they come
from, as the band means and scorer parts are.  A block whose record is missing, unreadable, of
another spec or version, of other tiles or of another size is recomputed by a writer and refused,
naming the file, by a reader: nothing is scored from mismatched statistics.

The values are exactly :func:`colour_stats.image_stats`'s (float32 before its cast to float64):
the same normalised tensor at the same size, the same :func:`colour_stats.all_stats`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from siscore_assets.core.compute.blocks import WorkerConfig, run_blocks
from siscore_assets.core.models import colour_stats, common
from siscore_assets.core.models.colour_stats import all_stats, stat_names
from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    check_images,
    images_to_tensor,
    iter_batches,
)
from siscore_assets.core.models.fused_scoring import STAT_CHUNK
from siscore_assets.core.storage.files import write_unique
from siscore_assets.core.storage.tables import sweep_tmp
from siscore_assets.core.storage.tile_store import TileStore, block_digest

STATS_DIR = "stats"
STATS_VERSION = 1
BATCH = 256


@functools.cache
def stats_code() -> str:
    """The digest of what computes the statistics (the colour / texture module and the tensor
    conversion before it), named in every statistics record and in the scorer parts' records,
    which copy them: an edit to it makes every stored block stale, version bumped or not.
    Hashed on first use, not at import (definitions load)."""
    parts = [inspect.getsource(colour_stats)]
    parts += [inspect.getsource(f) for f in (common.images_to_tensor, common.resize_tensor)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class StatsError(RuntimeError):
    """Stored statistics that cannot be used: names the file and what is wrong."""


@dataclass(frozen=True)
class StatsSpec:
    """What the statistics depend on: colour at ``px``, fine texture at ``texture_px`` (0: none),
    both read from the tile resampled to the larger of the two."""

    px: int
    texture_px: int = 0

    @property
    def tensor_px(self) -> int:
        return max(self.px, self.texture_px)

    @property
    def names(self) -> tuple[str, ...]:
        return stat_names(self.texture_px)

    def record(self) -> dict:
        return {
            "version": STATS_VERSION,
            "code": stats_code(),
            **asdict(self),
            "stats": list(self.names),
        }

    @property
    def digest(self) -> str:
        text = json.dumps(self.record(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@torch.inference_mode()
def compute_stats(images: np.ndarray, spec: StatsSpec) -> np.ndarray:
    """uint8 (N, H, W, 3) tiles -> float32 (N, len(spec.names)) statistics."""
    imgs = check_images(images)
    out = np.zeros((len(imgs), len(spec.names)), np.float32)
    for sl in iter_batches(len(imgs), STAT_CHUNK):  # the scorer parts' chunk: ~40 MB of tensors
        x01 = images_to_tensor(imgs[sl], spec.tensor_px) * PIXEL_STD + PIXEL_MEAN
        out[sl] = all_stats(x01, spec.px, spec.texture_px).numpy()
    return out


def stats_folder(store_path: str | Path, spec: StatsSpec) -> Path:
    return Path(store_path) / STATS_DIR / spec.digest


def _paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.npy", folder / f"{name}.json"


def record_problem(record: Path, spec: dict, tile_digest: str, rows: int, todo: str) -> str | None:
    """What is wrong with the JSON record of a block derived from a tile block (statistics, scorer
    parts): missing, unreadable, of another spec or version, of other tiles or of another size,
    naming the file; None when it matches.  ``todo``: what computes a missing one."""
    if not record.is_file():
        return f"{record}: statistics block missing ({todo})"
    try:
        meta = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        return f"{record}: unreadable ({exc})"
    if meta.get("spec") != spec:
        return f"{record}: stale statistics block (computed for other preprocessing or version)"
    if meta.get("tile_digest") != tile_digest:
        return f"{record}: stale statistics block (computed from other tiles)"
    if meta.get("rows") != rows:
        return f"{record}: statistics block of {meta.get('rows')} tiles, the tile block has {rows}"
    return None


def _check(folder: Path, name: str, spec: StatsSpec, rows: int, tile_digest: str) -> str | None:
    """None when the stored statistics of block ``name`` match; else what is wrong (the file)."""
    npy, record = _paths(folder, name)
    todo = "compute the store's statistics first"
    if problem := record_problem(record, spec.record(), tile_digest, rows, todo):
        return problem
    try:
        got = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"{npy}: unreadable ({exc})"
    if got.shape != (rows, len(spec.names)) or got.dtype != np.float32:
        return f"{npy}: holds {got.dtype} {got.shape}, expected float32 ({rows}, {len(spec.names)})"
    return None


def _tile_block(store: TileStore, name: str) -> tuple[int, str]:
    try:
        return block_digest(store, name)
    except ValueError as exc:
        raise StatsError(str(exc)) from exc


def stats_block(store_path: str, name: str, spec: StatsSpec, batch_size: int = BATCH) -> int:
    """Compute and store the statistics of tile block ``name`` unless matching ones are there (a
    killed run resumes); returns its rows.  The array goes to a temporary name unique to this
    writer and is renamed, the record last: a worker dying mid-block leaves nothing read."""
    store = TileStore(store_path)
    rows, tile_digest = _tile_block(store, name)
    folder = stats_folder(store_path, spec)
    if _check(folder, name, spec, rows, tile_digest) is None:
        return rows
    folder.mkdir(parents=True, exist_ok=True)
    npy, record = _paths(folder, name)
    record.unlink(missing_ok=True)  # a stale record never stands beside a new array
    lo = int(store.offsets[[b for b, _ in store.blocks].index(name)])

    def fill(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, "w+", np.float32, (rows, len(spec.names)))
        for sl in iter_batches(rows, batch_size):
            out[sl] = compute_stats(store.read_range(lo + sl.start, lo + sl.stop), spec)
        out.flush()
        del out

    write_unique(npy, fill)
    meta = {"spec": spec.record(), "tile_digest": tile_digest, "rows": rows}
    write_unique(record, lambda tmp: tmp.write_text(json.dumps(meta)))
    return rows


def block_stats(store_path: str, name: str, spec: StatsSpec) -> np.ndarray:
    """The statistics of tile block ``name``, computed and stored first where missing or stale
    (in this process): the scorer parts' path, one block per worker task."""
    stats_block(store_path, name, spec)
    store = TileStore(store_path)
    rows, tile_digest = _tile_block(store, name)
    folder = stats_folder(store_path, spec)
    problem = _check(folder, name, spec, rows, tile_digest)
    if problem:  # the store changed under us: never read stale statistics
        raise StatsError(problem)
    return np.array(np.load(_paths(folder, name)[0], mmap_mode="r"))


def ensure_stats(
    store_path: str | Path, spec: StatsSpec, workers: WorkerConfig, log=None
) -> StatsSpec:
    """Every block's statistics, computed on ``workers`` where missing or stale (a block whose
    worker died is retried); the statistics of every other spec are then removed (a store keeps
    one set)."""
    store = TileStore(store_path)
    folder = stats_folder(store_path, spec)
    sweep_tmp(folder)  # what a killed worker's process left
    todo = []
    for name, _, _ in store.block_ranges():
        rows, tile_digest = _tile_block(store, name)
        if _check(folder, name, spec, rows, tile_digest) is not None:
            todo.append(name)
    if todo:
        run_blocks(
            stats_block,
            [(str(store_path), name, spec) for name in todo],
            todo,
            workers,
            tiles=len(store),
            log=log,
        )
    remove_other_stats(store_path, spec)
    return spec


def read_stats(store_path: str | Path, spec: StatsSpec, start: int, stop: int) -> np.ndarray:
    """float32 statistics of rows ``start:stop`` of the store, every block they touch checked
    against the spec and its tiles first."""
    folder = stats_folder(store_path, spec)
    blocks = checked_blocks(
        TileStore(store_path),
        start,
        stop,
        lambda name, rows, digest: _check(folder, name, spec, rows, digest),
        StatsError,
    )
    out = [np.array(np.load(_paths(folder, name)[0], mmap_mode="r")[part]) for name, part in blocks]
    return np.concatenate(out) if out else np.zeros((0, len(spec.names)), np.float32)


def checked_blocks(
    store: TileStore,
    start: int,
    stop: int,
    check: Callable[[str, int, str], str | None],
    error: type[Exception],
) -> Iterator[tuple[str, slice]]:
    """The tile blocks rows ``start:stop`` of a store touch, as (name, the rows inside the block),
    each once its derived block passed ``check`` (name, rows, tile digest -> what is wrong or
    None); else ``error`` naming the problem: how statistics and scorer parts are read."""
    for name, lo, hi in store.block_ranges():
        a, b = max(start, lo), min(stop, hi)
        if a >= b:
            continue
        try:
            rows, tile_digest = block_digest(store, name)
        except ValueError as exc:
            raise error(str(exc)) from exc
        if problem := check(name, rows, tile_digest):
            raise error(problem)
        yield name, slice(a - lo, b - lo)


def remove_other_stats(store_path: str | Path, keep: StatsSpec) -> list[Path]:
    """Delete the store's statistics of every other spec (never read again)."""
    return remove_other_digests(Path(store_path) / STATS_DIR, keep.digest)


def remove_other_digests(base: Path, keep: str) -> list[Path]:
    """Delete every spec folder under ``base`` but ``keep``'s: a store keeps one set of each
    derived file (statistics, scorer parts) on disk."""
    removed = []
    for sub in sorted(base.iterdir()) if base.is_dir() else []:
        if sub.is_dir() and sub.name != keep:
            shutil.rmtree(sub, ignore_errors=True)
            removed.append(sub)
    return removed
