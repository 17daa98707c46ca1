"""The per-tile model stages read from the tile store in batches, block by block: habitation
probabilities, encoder features and siScores of a 400,000-tile year without loading it.

A block task (``habitation_block``, ``score_block``) opens the store and the checkpoint itself,
so it runs the same in this process or on a Dask worker; reading the next batch overlaps the
network's work on this one (``compute.prefetch``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from siscore_assets.core.compute.blocks import WorkerConfig, prefetch, run_blocks
from siscore_assets.core.imagery import radiometry
from siscore_assets.core.models import colour_stats, fused_scoring, stored_stats
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.storage.tile_store import TileStore, iter_row_batches, open_stack

BATCH = 256


def _stamp(path: str) -> tuple[str, int]:
    return str(path), Path(path).stat().st_mtime_ns


@lru_cache(maxsize=4)
def _habitation_model(
    path: str, mtime_ns: int, device: str | None
) -> habitation_lib.HabitationModel:
    return habitation_lib.load_habitation(path, device=device)


@lru_cache(maxsize=4)
def _scorer_model(path: str, mtime_ns: int, device: str | None):
    return scorer_lib.load_scorer(path, device=device)


def cached_scorer(path: str | Path, device: str | None = None):
    """The scorer at ``path``, loaded once per process (reloaded when the file changes)."""
    return _scorer_model(*_stamp(str(path)), device)


@lru_cache(maxsize=4)
def _optimised_nets(path: str, mtime_ns: int, device: str | None) -> list:
    return fused_scoring.optimised_nets(_scorer_model(path, mtime_ns, device))


_NETS_LOCK = threading.Lock()  # TorchScript compiles one module at a time (worker threads)


def cached_nets(path: str | Path, device: str | None, optimize: bool) -> list | None:
    """The scorer's optimised networks when ``optimize`` (built once per process), else None."""
    if not optimize:
        return None
    with _NETS_LOCK:
        return _optimised_nets(*_stamp(str(path)), device)


def map_rows(
    fn: Callable[[np.ndarray], np.ndarray],
    stack,
    rows: np.ndarray | None = None,
    batch_size: int = BATCH,
) -> np.ndarray:
    """``fn`` over the store's rows (all, or ``rows`` in order) in prefetched batches."""
    out = [fn(images) for _, images in prefetch(iter_row_batches(stack, batch_size, rows))]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def habitation_block(
    model_path: str,
    store_path: str,
    start: int,
    stop: int,
    device: str | None = None,
    batch_size: int = BATCH,
) -> np.ndarray:
    """(stop - start, 3) urban / rural / uninhabited probabilities of rows ``start:stop``."""
    model = _habitation_model(*_stamp(model_path), device)
    out = map_rows(
        lambda x: habitation_lib.predict_habitation(model, x, batch_size=len(x)),
        open_stack(store_path),
        np.arange(start, stop),
        batch_size,
    )
    return out.reshape(-1, 3).astype(np.float32)


def score_block(
    model_path: str,
    store_path: str,
    start: int,
    stop: int,
    device: str | None = None,
    transform: radiometry.BandTransform | None = None,
    optimize: bool = False,
    batch_size: int = BATCH,
) -> np.ndarray:
    """The scorer's output for rows ``start:stop`` (float64, [0, 1]), each batch brought to the
    country's common radiometry by ``transform`` first when one is given; the seeds fused (CNN
    input and statistics once per batch, the same scores; ``optimize``: the networks of
    :func:`fused_scoring.optimised_nets`)."""
    model = cached_scorer(model_path, device)
    nets = cached_nets(model_path, device, optimize)
    fix = transform.apply if transform is not None else (lambda x: x)
    return map_rows(
        lambda x: fused_scoring.score_images_fused(model, fix(x), len(x), nets),
        open_stack(store_path),
        np.arange(start, stop),
        batch_size,
    ).astype(np.float64)


def _feature_ranker(path: str, mtime_ns: int) -> colour_stats.FeatureRanker:
    return colour_stats.load_feature_ranker(path)


def feature_block(
    model_path: str,
    store_path: str,
    start: int,
    stop: int,
    device: str | None = None,
    batch_size: int = BATCH,
) -> np.ndarray:
    """The colour / texture feature ranker's score for rows ``start:stop`` (float64, [0, 1]);
    statistics on the CPU (``device`` is taken for the common signature).  A chunked store's
    statistics are read from its stored ones (:func:`stored_stats.ensure_stats` first)."""
    ranker = _feature_ranker(*_stamp(model_path))
    stack = open_stack(store_path)
    if isinstance(stack, TileStore):
        spec = stored_stats.StatsSpec(ranker.px, ranker.texture_px)
        return ranker.score_stats(stored_stats.read_stats(store_path, spec, start, stop))
    return map_rows(ranker.score, stack, np.arange(start, stop), batch_size).astype(np.float64)


def ensure_feature_stats(model_path: str, store_path: str, workers: WorkerConfig, log=None) -> None:
    """The stored statistics a saved ranker reads from a chunked store, computed where missing
    (a legacy single-array stack is read tile by tile instead)."""
    if isinstance(open_stack(store_path), TileStore):
        ranker = _feature_ranker(*_stamp(model_path))
        spec = stored_stats.StatsSpec(ranker.px, ranker.texture_px)
        stored_stats.ensure_stats(store_path, spec, workers, log)


def embed_rows(
    model: habitation_lib.HabitationModel,
    stack,
    rows: np.ndarray | None = None,
    batch_size: int = BATCH,
) -> np.ndarray:
    """Encoder features of the given rows (in this process), batch by batch."""
    feats = map_rows(
        lambda x: habitation_lib.embed(model, x, batch_size=len(x)), stack, rows, batch_size
    )
    return (
        feats.reshape(-1, model.embed_dim).astype(np.float32)
        if feats.size
        else np.zeros((0, model.embed_dim), np.float32)
    )


def block_tasks(stack, rows_per_task: int = 1024) -> list[tuple[str, int, int]]:
    """(name, start, stop) row ranges of a store: its blocks, each cut to ``rows_per_task``."""
    ranges = stack.block_ranges() if hasattr(stack, "block_ranges") else [("rows", 0, len(stack))]
    out = []
    for name, lo, hi in ranges:
        for s in range(lo, hi, rows_per_task):
            out.append(
                (
                    name if hi - lo <= rows_per_task else f"{name}+{s - lo}",
                    s,
                    min(hi, s + rows_per_task),
                )
            )
    return out


def map_store(
    block_fn: Callable[..., np.ndarray],
    model_path: str | Path,
    store_path: str | Path,
    stack,
    device: str | None,
    workers: WorkerConfig,
    *,
    empty: np.ndarray,
    log=None,
    extra: tuple = (),
) -> np.ndarray:
    """``block_fn`` (``habitation_block``, ``score_block``, ``feature_block``, or
    ``scorer_parts.score_parts_block``) over every row of the store, task by task on
    ``workers``, concatenated in row order (``extra``: more arguments after the device);
    ``empty`` for a store without tiles."""
    if not len(stack):
        return empty
    tasks = block_tasks(stack)
    parts = run_blocks(
        block_fn,
        [(str(model_path), str(store_path), lo, hi, device, *extra) for _, lo, hi in tasks],
        [name for name, _, _ in tasks],
        workers,
        tiles=len(stack),
        log=log,
    )
    return np.concatenate(parts)


def score_and_filter(
    scorer_path: str | Path,
    habitation_path: str | Path,
    store_path: str,
    stack,
    device: str | None,
    workers: WorkerConfig,
    log=None,
    transform: radiometry.BandTransform | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The scorer's output and the habitation model's class probabilities for every row of a
    store, on ``workers``: what a patch table of siScore is built from.  ``transform``: the
    year's common radiometry, applied before the scorer as `siscore_grid` applies it (None: the
    tiles as stored); the filter sees the tiles as stored, as `habitation` does."""
    raw = map_store(
        score_block, scorer_path, store_path, stack, device, workers,
        empty=np.zeros(0), log=log, extra=(transform,),
    )  # fmt: skip
    probs = map_store(
        habitation_block,
        habitation_path,
        store_path,
        stack,
        device,
        workers,
        empty=np.zeros((0, 3)),
    )
    return raw, probs
