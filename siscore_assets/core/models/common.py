"""Shared plumbing for the Stage-1 encoder and the Stage-3 scorer.

Seeding, device choice, uint8 image -> float tensor conversion, augmentation and checkpoint
files live here so that both models treat pixels, randomness and files the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from siscore_assets.core.storage.files import atomic_path

# Fixed pixel normalisation (after scaling to [0, 1]).  A constant, not data statistics, so a
# checkpoint scores any later year exactly as it scored the training year.
PIXEL_MEAN = 0.4
PIXEL_STD = 0.25


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global RNG and torch (CPU + CUDA) in one place."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """Use the requested device, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Temporarily ask torch for deterministic kernels and restore the caller's setting after.

    ``warn_only`` keeps CUDA runs alive when an op has no deterministic kernel; on CPU every op
    used here is deterministic, so same seed -> bit-identical weights.
    """
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_det = torch.backends.cudnn.deterministic
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_det


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate the (N, H, W, 3) uint8 contract early, with a readable error."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {arr.dtype}")
    return arr


def resize_tensor(x: torch.Tensor, px: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, px, px): area averaging when shrinking (every pixel counts),
    bilinear when enlarging, unchanged at the same size.  The one resampling rule of the models."""
    h, w = x.shape[-2:]
    if (h, w) == (px, px):
        return x
    if h >= px and w >= px:
        return F.interpolate(x, size=(px, px), mode="area")
    return F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False)


def images_to_tensor(
    images: np.ndarray,
    input_px: int,
    *,
    grayscale: bool = False,
    device: torch.device | str | None = None,
    normalize: str = "fixed",
) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, input_px, input_px) on ``device``.

    Downsampling uses area averaging (256 px real tiles -> 64 px keeps every pixel's
    contribution); upsampling is bilinear.  Grayscale replicates luminance into 3 channels so
    the network shape never changes with the option.  ``normalize``: ``"fixed"`` constants, or
    ``"per_image"``: each image to zero mean / unit std per channel, which removes the global
    haze, exposure and colour-balance shifts between yearly scenes before the network sees them.
    """
    if normalize not in ("fixed", "per_image"):
        raise ValueError(f"normalize must be 'fixed' or 'per_image', got {normalize!r}")
    arr = check_images(images)
    x = torch.from_numpy(np.ascontiguousarray(arr))
    if (
        torch.device(device or "cpu").type == "cuda"
    ):  # pinned host memory: the copy overlaps compute
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device or "cpu")
    x = resize_tensor(x.permute(0, 3, 1, 2).float().div_(255.0), input_px)
    if grayscale:
        x = gray3(x)
    return normalise(x, normalize).contiguous()


def gray3(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> its luminance in all 3 channels: the network's shape never changes."""
    lum = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return lum.expand(-1, 3, -1, -1)


def normalise(x01: torch.Tensor, normalize: str = "fixed") -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> the networks' input: ``fixed`` constants, or ``per_image`` (each
    image's channels to zero mean / unit sd: yearly haze and exposure shifts removed)."""
    if normalize == "per_image":
        mean = x01.mean(dim=(2, 3), keepdim=True)
        std = x01.std(dim=(2, 3), keepdim=True)
        return (x01 - mean) / (std + 0.02)
    return (x01 - PIXEL_MEAN) / PIXEL_STD


def augment_geometric(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rot90 (0..3) and horizontal flip per image: overhead imagery has no 'up'."""
    n = x.shape[0]
    rots = torch.randint(0, 4, (n,), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator)
    return turned(x, rots, flips)


def turned(x: torch.Tensor, rots: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Each image flipped (``flips``) then turned ``rots`` quarter turns: what
    :func:`augment_geometric` does with the turns it draws (or turns drawn beforehand)."""
    out = torch.empty_like(x)
    for k in range(4):
        for f in range(2):
            idx = ((rots == k) & (flips == f)).nonzero(as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            idx_d = idx.to(x.device)
            xi = x.index_select(0, idx_d)
            if f:
                xi = xi.flip(-1)
            if k:
                xi = torch.rot90(xi, k, dims=(-2, -1))
            out.index_copy_(0, idx_d, xi)
    return out


#: Dihedral views a scorer may average at score time: identity; + a half turn; the four quarter
#: turns; the four turns of the image and of its mirror (the whole dihedral group D4).
SCORE_VIEWS = (1, 2, 4, 8)


def view_indices(views: int) -> tuple[int, ...]:
    """The :func:`dihedral_view` indices a scorer of ``views`` (:data:`SCORE_VIEWS`) averages."""
    if views not in SCORE_VIEWS:
        raise ValueError(f"views must be one of {SCORE_VIEWS}, got {views}")
    return (0, 2) if views == 2 else tuple(range(views))


def dihedral_view(x: torch.Tensor, view: int) -> torch.Tensor:
    """View ``view`` (0..7) of (N, C, H, W) images: ``view % 4`` quarter turns, of the mirror
    image from 4 on (:func:`view_indices` says which a scorer averages).  Overhead imagery has
    no 'up', so a place's score is averaged over these (a network trained with random turns
    still scores them differently)."""
    if not 0 <= view < 8:
        raise ValueError(f"view must be 0..7, got {view}")
    out = x.flip(-1) if view >= 4 else x
    return torch.rot90(out, view % 4, dims=(-2, -1)) if view % 4 else out


def augment_photometric(
    x: torch.Tensor, generator: torch.Generator, *, brightness: float, contrast: float
) -> torch.Tensor:
    """Mild per-image brightness shift and contrast scale (in normalised units).

    Yearly composites differ in sun angle, haze and sensor calibration; jitter teaches the
    model that such global shifts carry no development signal, which keeps years comparable.
    """
    if brightness <= 0 and contrast <= 0:
        return x
    n = x.shape[0]
    b = (torch.rand(n, generator=generator) * 2 - 1) * brightness / PIXEL_STD
    c = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * contrast
    b = b.to(x.device).view(n, 1, 1, 1)
    c = c.to(x.device).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean + b


def save_checkpoint(
    path: str | Path,
    kind: str,
    config: dict[str, Any],
    state_dict: dict,
    *,
    name: str | None = None,
) -> Path:
    """Write state dict + rebuild config to one file (parent dirs created), atomically: a scoring
    process reading the model while it is retrained sees the old file or the new one whole.
    torch names the archive inside the file after the file, so it is written under ``name``
    (default its own; a staged temporary file passes its final name) in a scratch folder first:
    the same model gives the same bytes."""
    path = Path(path)
    cpu_state = {k: v.detach().cpu() for k, v in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch_dir = tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.")
    with atomic_path(path) as tmp, scratch_dir as scratch:
        written = Path(scratch) / (name or path.name)
        torch.save({"kind": kind, "config": dict(config), "state_dict": cpu_state}, written)
        os.replace(written, tmp)
    return path


def checkpoint_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: which model made a set of scores (the same
    model gives the same bytes, :func:`save_checkpoint`), so readers that pair years can refuse
    scores of two models."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, Any], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`, checking it is the expected kind."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if blob.get("kind") != kind:
        raise ValueError(f"{path} holds a {blob.get('kind')!r} checkpoint, expected {kind!r}")
    return blob["config"], blob["state_dict"]


def iter_batches(n: int, batch_size: int) -> Iterator[slice]:
    """Contiguous slices covering range(n)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def resize_images(images: np.ndarray, px: int, batch_size: int = 256) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, px, px, 3), area-averaged (a no-op at the same size)."""
    arr = check_images(images)
    if arr.shape[1:3] == (px, px):
        return arr
    out = np.empty((len(arr), px, px, 3), np.uint8)
    for sl in iter_batches(len(arr), batch_size):
        y = resize_tensor(
            torch.from_numpy(np.ascontiguousarray(arr[sl])).permute(0, 3, 1, 2).float(), px
        )
        out[sl] = y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties averaged (like scipy.stats.rankdata 'average'), on the tensor's
    device, for rank losses and in-training Spearman."""
    less = (values[None, :] < values[:, None]).sum(dim=1).float()
    equal = (values[None, :] == values[:, None]).sum(dim=1).float()
    return less + (equal + 1.0) / 2.0


def standardise(v: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit root-mean-square: the correlation of two such vectors is their mean
    product."""
    v = v - v.mean()
    return v / (v.pow(2).mean().sqrt() + 1e-8)
