"""What the scorer reads of a tile-year, computed once and stored beside the tile store.

The ``cpu`` recipe reads a 256 px tile (196 KB) for two things: a 64 px CNN input and 26
colour / fine-texture statistics.  Both are fixed by the recipe's preprocessing (and the year's
radiometric transform), not by the trained weights, so they are computed once per tile-year
(:func:`parts_block`) and every later scoring pass reads 18.5 KB a tile
(:func:`score_parts_block`):

- the CNN input as exact 4 x 4 area *sums* of the uint8 pixels (0..4080: 12 bits, two values
  packed in three bytes), from which the area-averaged input is rebuilt to float rounding;
- the raw statistics as float32, exactly what every seed's ``raw_stats`` computes (for a year
  scored as read, the store's shared statistics of :mod:`stored_stats`, which the baselines
  read too: computed once for all three).

A parts block lives at ``<store>/parts/<spec digest>/<block>.{cnn,stats}.npy`` with a JSON
record written last, naming the recipe's preprocessing, the transform, the parts version and
the digest of the tile block it was computed from.  A reader refuses, naming the file, a block
that is missing, computed for another preprocessing / transform / version, from other tiles,
or of another size: nothing is scored from mismatched inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from siscore_assets.core.compute.blocks import WorkerConfig, run_blocks
from siscore_assets.core.imagery import radiometry
from siscore_assets.core.models import batch_inference, stored_stats
from siscore_assets.core.models.colour_stats import stat_names
from siscore_assets.core.models.common import (
    PIXEL_MEAN,
    PIXEL_STD,
    check_images,
    choose_device,
    gray3,
    images_to_tensor,
    iter_batches,
    normalise,
)
from siscore_assets.core.models.fused_scoring import STAT_CHUNK, scores_from_parts
from siscore_assets.core.models.scorer import (
    ScorerConfig,
    ScorerEnsemble,
    ScorerModel,
    raw_statistics,
)
from siscore_assets.core.models.stored_stats import StatsSpec
from siscore_assets.core.storage.files import write_unique
from siscore_assets.core.storage.tables import sweep_tmp
from siscore_assets.core.storage.tile_store import (
    TileStore,
    block_digest,
)

PARTS_VERSION = 1
PARTS_DIR = "parts"
BATCH = 256
#: Rows the networks score at a time from stored parts: at 64 px input a smaller batch keeps a
#: layer's activations in cache (1.06-1.08x over 256 on one thread, the same scores on PRK).
SCORE_BATCH = 64
#: The largest tile / CNN input ratio whose 16-bit area sums cannot overflow (255 x 16^2 < 2^16);
#: beyond it (settings allow an 8 px input on 256 px tiles) the fused native path scores.
MAX_FACTOR = 16

assert PIXEL_MEAN == 0.4 and PIXEL_STD == 0.25  # the digest below names the normalisation


class PartsError(RuntimeError):
    """Stored parts that cannot be used: names the file and what is wrong."""


@dataclass(frozen=True)
class PartsSpec:
    """Everything the stored parts depend on: the recipe's preprocessing and the transform."""

    input_px: int
    tensor_px: int
    texture_px: int
    colour_stats: bool
    normalize: str
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def of(
        cls, config: ScorerConfig, transform: radiometry.BandTransform | None = None
    ) -> PartsSpec:
        """The parts a scorer of ``config`` reads after ``transform``."""
        if config.tensor_px % config.input_px:
            raise ValueError(
                f"stored parts need the tile size ({config.tensor_px} px) to be a multiple of "
                f"the CNN's input ({config.input_px} px)"
            )
        if config.tensor_px // config.input_px > MAX_FACTOR:
            raise ValueError(
                f"stored parts keep the CNN input as 16-bit area sums: a {config.tensor_px} px "
                f"tile over a {config.input_px} px input overflows them (at most 16x)"
            )
        t = transform or radiometry.BandTransform()
        return cls(
            config.input_px,
            config.tensor_px,
            config.texture_px if config.colour_stats else 0,
            config.colour_stats,
            config.normalize,
            tuple(float(v) for v in t.gain),  # type: ignore[arg-type]
            tuple(float(v) for v in t.offset),  # type: ignore[arg-type]
        )

    @property
    def factor(self) -> int:
        return self.tensor_px // self.input_px

    @property
    def stat_names(self) -> tuple[str, ...]:
        return stat_names(self.texture_px) if self.colour_stats else ()

    @property
    def cnn_bytes(self) -> int:
        """Bytes of one tile's stored CNN input."""
        values = self.input_px * self.input_px * 3
        return values * 3 // 2 if self.packed else values * 2

    @property
    def packed(self) -> bool:
        """Sums fit 12 bits (a factor up to 4) and pair up: stored packed."""
        return 255 * self.factor**2 < 4096 and (self.input_px * self.input_px * 3) % 2 == 0

    def record(self) -> dict:
        """What a parts block's record names (as JSON reads it back)."""
        doc = {
            "version": PARTS_VERSION,
            "stats_code": stored_stats.stats_code(),  # the statistics are theirs (or computed so)
            **asdict(self),
            "stats": list(self.stat_names),
        }
        return json.loads(json.dumps(doc))

    @property
    def digest(self) -> str:
        text = json.dumps(self.record(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def transform(self) -> radiometry.BandTransform:
        return radiometry.BandTransform(self.gain, self.offset)


def pack12(values: np.ndarray) -> np.ndarray:
    """(n, m) integers in 0..4095, m even -> (n, 3m/2) uint8: two values in three bytes."""
    v = values.astype(np.uint16)
    a, b = v[:, 0::2], v[:, 1::2]
    out = np.empty((v.shape[0], a.shape[1], 3), np.uint8)
    out[..., 0] = a & 0xFF
    out[..., 1] = (a >> 8) | ((b & 0xF) << 4)
    out[..., 2] = b >> 4
    return out.reshape(v.shape[0], -1)


def unpack12(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack12`: (n, 3m/2) uint8 -> (n, m) uint16."""
    p = packed.reshape(packed.shape[0], -1, 3).astype(np.uint16)
    out = np.empty((p.shape[0], p.shape[1] * 2), np.uint16)
    out[:, 0::2] = p[..., 0] | ((p[..., 1] & 0xF) << 8)
    out[:, 1::2] = (p[..., 1] >> 4) | (p[..., 2] << 4)
    return out


def compute_parts(images: np.ndarray, spec: PartsSpec) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, tensor_px, tensor_px, 3) tiles -> (CNN input bytes (N, cnn_bytes) uint8,
    raw statistics (N, k) float32), after the spec's transform."""
    imgs = spec.transform().apply(_recipe_tiles(images, spec))
    stats = np.zeros((len(imgs), len(spec.stat_names)), np.float32)
    if spec.colour_stats:
        with torch.inference_mode():
            for sl in iter_batches(len(imgs), STAT_CHUNK):
                x = images_to_tensor(imgs[sl], spec.tensor_px, normalize=spec.normalize)
                stats[sl] = raw_statistics(x, spec.input_px, spec.texture_px).numpy()
    return cnn_parts(imgs, spec), stats


def _recipe_tiles(images: np.ndarray, spec: PartsSpec) -> np.ndarray:
    imgs = check_images(images)
    if imgs.shape[1:3] != (spec.tensor_px, spec.tensor_px):
        raise ValueError(
            f"tiles of {imgs.shape[1]} px, the recipe reads {spec.tensor_px} px: stored parts "
            "are computed from the tiles the scorer would read"
        )
    return imgs


def cnn_parts(imgs: np.ndarray, spec: PartsSpec) -> np.ndarray:
    """The stored CNN input bytes of uint8 (N, tensor_px, tensor_px, 3) transformed tiles."""
    imgs = _recipe_tiles(imgs, spec)
    n, p, f = len(imgs), spec.input_px, spec.factor
    sums = imgs.reshape(n, p, f, p, f, 3).sum(axis=(2, 4), dtype=np.uint16).reshape(n, -1)
    return pack12(sums) if spec.packed else sums.view(np.uint8).reshape(n, -1)


def shared_stats(spec: PartsSpec) -> StatsSpec | None:
    """The store's shared statistics (:mod:`stored_stats`, also the baselines') when they are
    exactly these parts' statistics: tiles scored as read (no transform), fixed normalisation,
    the tile at the larger of the CNN and texture sizes; else None (computed here)."""
    shared = StatsSpec(spec.input_px, spec.texture_px)
    if (
        spec.colour_stats
        and spec.transform().is_identity
        and spec.normalize == "fixed"
        and spec.tensor_px == shared.tensor_px
    ):
        return shared
    return None


def cnn_tensor(cnn: np.ndarray, spec: PartsSpec, grayscale: bool = False) -> torch.Tensor:
    """The stored CNN input bytes -> the normalised (N, 3, input_px, input_px) float tensor the
    network takes (the area average of the tile, to float rounding)."""
    n, p = cnn.shape[0], spec.input_px
    sums = unpack12(cnn) if spec.packed else np.ascontiguousarray(cnn).view(np.uint16)
    x01 = torch.from_numpy(sums.reshape(n, p, p, 3).astype(np.float32))
    x01 = x01.permute(0, 3, 1, 2).div_(float(spec.factor**2) * 255.0)
    x = normalise(x01, spec.normalize).contiguous()
    return gray3(x) if grayscale else x


# --- stored blocks ----------------------------------------------------------------------------


def parts_folder(store_path: str | Path, spec: PartsSpec) -> Path:
    return Path(store_path) / PARTS_DIR / spec.digest


def _paths(folder: Path, name: str) -> tuple[Path, Path, Path]:
    return folder / f"{name}.cnn.npy", folder / f"{name}.stats.npy", folder / f"{name}.json"


def _tile_block(store: TileStore, name: str) -> tuple[int, str]:
    """(rows, digest) of the tile block ``name`` of a committed store, as a :class:`PartsError`."""
    try:
        return block_digest(store, name)
    except ValueError as exc:
        raise PartsError(str(exc)) from exc


def _check(folder: Path, name: str, spec: PartsSpec, rows: int, tile_digest: str) -> str | None:
    """None when the stored parts of block ``name`` match; else what is wrong, naming the file."""
    cnn, stats, record = _paths(folder, name)
    todo = "compute the parts of this store first"
    if problem := stored_stats.record_problem(record, spec.record(), tile_digest, rows, todo):
        return problem
    for path, width in ((cnn, spec.cnn_bytes), (stats, len(spec.stat_names))):
        try:
            shape = np.load(path, mmap_mode="r").shape
        except (OSError, ValueError) as exc:
            return f"{path}: unreadable ({exc})"
        if shape != (rows, width):
            return f"{path}: holds {shape}, expected ({rows}, {width})"
    return None


def parts_block(store_path: str, name: str, spec: PartsSpec, batch_size: int = BATCH) -> int:
    """Compute and store the parts of tile block ``name`` (skipped when a matching block is
    already there: a killed run resumes); returns its rows.  Arrays are written to temporary
    names and renamed, the record last: a worker dying mid-block leaves no block anyone reads."""
    store = TileStore(store_path)
    rows, tile_digest = _tile_block(store, name)
    folder = parts_folder(store_path, spec)
    if _check(folder, name, spec, rows, tile_digest) is None:
        return rows
    folder.mkdir(parents=True, exist_ok=True)
    cnn_path, stats_path, record = _paths(folder, name)
    record.unlink(missing_ok=True)  # a stale record never stands beside new arrays
    lo = int(store.offsets[[b for b, _ in store.blocks].index(name)])

    shared = shared_stats(spec)

    def fill(tmp_cnn: Path, tmp_stats: Path) -> None:
        cnn = np.lib.format.open_memmap(tmp_cnn, "w+", np.uint8, (rows, spec.cnn_bytes))
        stats = np.lib.format.open_memmap(tmp_stats, "w+", np.float32, (rows, len(spec.stat_names)))
        if shared is not None:  # the baselines' statistics (computed here when they are not)
            stats[:] = stored_stats.block_stats(store_path, name, shared)
        for sl in iter_batches(rows, batch_size):
            images = store.read_range(lo + sl.start, lo + sl.stop)
            if shared is None:
                cnn[sl], stats[sl] = compute_parts(images, spec)
            else:
                cnn[sl] = cnn_parts(images, spec)
        cnn.flush()
        stats.flush()
        del cnn, stats

    # Temporary names unique to this writer (two runs of one block never share one), renamed
    # stats then CNN input, the record last: a block without its record is recomputed.
    write_unique(cnn_path, lambda tc: write_unique(stats_path, lambda ts: fill(tc, ts)))
    meta = {"spec": spec.record(), "tile_digest": tile_digest, "rows": rows}
    write_unique(record, lambda tmp: tmp.write_text(json.dumps(meta)))
    return rows


def read_parts(
    store_path: str, spec: PartsSpec, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray]:
    """(CNN input bytes, raw statistics) of rows ``start:stop`` of the store, every block they
    touch checked against the spec and its tiles first."""
    folder = parts_folder(store_path, spec)
    cnns, stats = [], []
    for name, part in stored_stats.checked_blocks(
        TileStore(store_path),
        start,
        stop,
        lambda name, rows, digest: _check(folder, name, spec, rows, digest),
        PartsError,
    ):
        cnn_path, stats_path, _ = _paths(folder, name)
        cnns.append(np.array(np.load(cnn_path, mmap_mode="r")[part]))
        stats.append(np.array(np.load(stats_path, mmap_mode="r")[part]))
    if not cnns:
        return np.zeros((0, spec.cnn_bytes), np.uint8), np.zeros((0, len(spec.stat_names)))
    return np.concatenate(cnns), np.concatenate(stats)


@torch.inference_mode()
def score_parts(
    model: ScorerModel | ScorerEnsemble,
    cnn: np.ndarray,
    stats: np.ndarray,
    spec: PartsSpec,
    batch_size: int = SCORE_BATCH,
    nets: list[torch.nn.Module] | None = None,
) -> np.ndarray:
    """The model's scores (float64) from stored parts; the spec must be the model's (``nets``:
    :func:`fused_scoring.optimised_nets`, opt-in)."""
    if PartsSpec.of(model.config, spec.transform()) != spec:
        raise PartsError(
            f"stored parts of {spec} do not match the scorer's preprocessing {model.config}"
        )
    out = np.zeros(len(cnn), np.float64)
    for sl in iter_batches(len(cnn), batch_size):
        x = cnn_tensor(cnn[sl], spec, model.config.grayscale)
        raw = torch.from_numpy(np.ascontiguousarray(stats[sl])) if spec.colour_stats else None
        out[sl] = scores_from_parts(model, x, raw, nets).double().numpy()
    return out


# --- block tasks (the signature of batch_inference.score_block) -------------------------------


def score_parts_block(
    model_path: str,
    store_path: str,
    start: int,
    stop: int,
    device: str | None = None,
    transform: radiometry.BandTransform | None = None,
    optimize: bool = False,
    batch_size: int = SCORE_BATCH,
) -> np.ndarray:
    """``batch_inference.score_block`` from the stored parts of rows ``start:stop`` (computed by
    :func:`ensure_parts` for this scorer's preprocessing and ``transform``)."""
    model = batch_inference.cached_scorer(model_path, device)
    spec = PartsSpec.of(model.config, transform)
    cnn, stats = read_parts(store_path, spec, start, stop)
    nets = batch_inference.cached_nets(model_path, device, optimize)
    return score_parts(model, cnn, stats, spec, batch_size, nets)


def ensure_parts(
    store_path: str | Path,
    config: ScorerConfig,
    transform: radiometry.BandTransform | None,
    workers: WorkerConfig,
    log=None,
) -> PartsSpec:
    """Every block's parts for a scorer of ``config`` after ``transform``, computed on
    ``workers`` where missing or stale (a block whose worker died is retried); the spec."""
    spec = PartsSpec.of(config, transform)
    store = TileStore(store_path)
    blocks = store.block_ranges()
    sweep_tmp(parts_folder(store_path, spec))  # what a killed worker's process left
    run_blocks(
        parts_block,
        [(str(store_path), name, spec) for name, _, _ in blocks],
        [name for name, _, _ in blocks],
        workers,
        tiles=len(store),
        log=log,
    )
    return spec


# --- where stored parts are used --------------------------------------------------------------


def parts_apply(config: ScorerConfig, stack, device: str | None) -> bool:
    """Whether a scorer of ``config`` scores ``stack`` from stored parts: a chunked tile store of
    the tiles it reads, a CNN input smaller than the tile (a factor > 1, so the parts are
    smaller than the tile) with the colour / texture statistics that dominate the cost (the
    ``cpu`` recipe), on the CPU (parts are decoded there), at most :data:`MAX_FACTOR` apart.
    Otherwise the fused native path."""
    return (
        config.colour_stats
        and isinstance(stack, TileStore)
        and stack.px == config.tensor_px
        and config.tensor_px % config.input_px == 0
        and 1 < config.tensor_px // config.input_px <= MAX_FACTOR
        and choose_device(device).type == "cpu"
    )


def remove_other_parts(store_path: str | Path, keep: PartsSpec) -> list[Path]:
    """Delete the store's parts of every other spec (another preprocessing or transform: never
    read again), so a store keeps one set of parts on disk."""
    return stored_stats.remove_other_digests(Path(store_path) / PARTS_DIR, keep.digest)
