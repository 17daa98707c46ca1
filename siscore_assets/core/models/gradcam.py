"""Grad-CAM for the siScore scorer: which pixels of a tile pushed its score up.

The paper (Fig. 6) shows Grad-CAM heatmaps of chosen tiles year by year: reclaimed land and
new buildings light up as the score grows.  This module computes them with the maintained
``grad-cam`` package (``pytorch_grad_cam.GradCAM``: forward hooks on the target layer,
channel weights = spatially averaged gradients, ReLU, per-image min-max to [0, 1]) and adds
what the platform needs around it: the scorer's own preprocessing, the target (the scalar
siScore), a sensible default layer for small inputs, heatmaps at the tile's resolution, colour
overlays and a tiles x years panel as PNG bytes.

Target: the scalar score.  It is taken through the logit by default: the sigmoid only
multiplies every gradient of an image by the same positive factor, which Grad-CAM's ReLU and
min-max normalisation cancel, so the map is the same - except that a saturated score
(sigmoid' ~ 0) would give an all-zero map.  ``target="score"`` differentiates the sigmoid
output itself.

Layer: ``layer4`` (the last conv block) when its feature map is at least ``MIN_CAM_SIDE``
cells wide; otherwise the deepest block that is.  A ResNet-18 divides the input by 32 at
``layer4``, so the 32 px scorer has a 1 x 1 ``layer4`` map - a single number with nothing to
localise - and falls back to ``layer2`` (4 x 4); a 128 px or 256 px scorer uses ``layer4``.
Heatmaps are min-max normalised per image (the library's convention): they show *where* the
score comes from within a tile, not how much; put the score next to them (the panel does).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from siscore_assets.core.models.common import check_images, images_to_tensor, iter_batches

BLOCKS: tuple[str, ...] = ("layer4", "layer3", "layer2", "layer1")
MIN_CAM_SIDE = 4


class _ScalarOutput(nn.Module):
    """Expose the scorer as (N, 1) so the library's ``ClassifierOutputTarget(0)`` picks it."""

    def __init__(self, model: nn.Module, target: str) -> None:
        super().__init__()
        self.model = model
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.logits(x) if self.target == "logit" else self.model(x)
        return out.reshape(-1, 1)


def _backbone(model: nn.Module) -> nn.Module:
    return getattr(model, "net", model)


def _feature_side(model: nn.Module, block: nn.Module, input_px: int) -> int:
    """Smallest spatial side of ``block``'s output for one ``input_px`` image (one cheap pass)."""
    seen: list[tuple[int, ...]] = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    dev = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, input_px, input_px, device=dev))
    finally:
        handle.remove()
    if not seen or len(seen[0]) != 4:
        raise ValueError("target layer did not produce a (N, C, H, W) feature map")
    return min(seen[0][2:])


def resolve_layer(
    model: nn.Module, layer: str | nn.Module | None, input_px: int
) -> tuple[str, nn.Module]:
    """(name, module) of the Grad-CAM layer; ``None`` means the ``MIN_CAM_SIDE`` rule above."""
    net = _backbone(model)
    if isinstance(layer, nn.Module):
        return type(layer).__name__, layer
    if layer is not None:
        module = getattr(net, layer, None) or getattr(model, layer, None)
        if not isinstance(module, nn.Module):
            raise ValueError(f"model has no layer {layer!r}; ResNet blocks are {BLOCKS}")
        return layer, module
    present = [
        (name, getattr(net, name))
        for name in BLOCKS
        if isinstance(getattr(net, name, None), nn.Module)
    ]
    if not present:
        raise ValueError(f"model has none of {BLOCKS}; pass layer= explicitly")
    for name, module in present:
        if _feature_side(model, module, input_px) >= MIN_CAM_SIDE:
            return name, module
    return present[-1]


def gradcam(
    model: nn.Module,
    images: np.ndarray,
    *,
    layer: str | nn.Module | None = None,
    target: str = "logit",
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM heatmaps (N, H, W) float32 in [0, 1] at the images' own resolution.

    ``model`` is a :class:`~siscore_assets.core.models.scorer.ScorerModel` (or any module with
    ``config.input_px``, ``logits(x)`` and ``forward(x)`` -> (N,)).
    ``images`` are uint8 (N, H, W, 3) tiles, preprocessed exactly as for scoring.  The model
    is left in eval mode with no gradients stored.  Deterministic for given weights.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if target not in ("logit", "score"):
        raise ValueError(f"target must be 'logit' or 'score', got {target!r}")
    imgs = check_images(images)
    n, h, w = imgs.shape[:3]
    cfg = model.config
    px = int(getattr(cfg, "tensor_px", cfg.input_px))  # fine texture: native-size tiles
    model.eval()
    _, module = resolve_layer(model, layer, px)
    dev = next(model.parameters()).device
    wrapped = _ScalarOutput(model, target)
    out = np.zeros((n, h, w), dtype=np.float32)
    cam = GradCAM(model=wrapped, target_layers=[module])
    try:
        with torch.enable_grad():
            for sl in iter_batches(n, batch_size):
                # the model makes its own grayscale CNN input: colour statistics need colour
                normalize = str(getattr(cfg, "normalize", "fixed"))
                x = images_to_tensor(imgs[sl], px, device=dev, normalize=normalize)
                maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * x.shape[0])
                t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).unsqueeze(1)
                if t.shape[-2:] != (h, w):
                    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
                out[sl] = t.squeeze(1).clamp_(0.0, 1.0).numpy()
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
        model.eval()
    return out


def _colormap(heatmap: np.ndarray, cmap: str) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 4) float RGBA through a matplotlib colour map."""
    import matplotlib

    return matplotlib.colormaps[cmap](np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0))


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """uint8 RGB (H, W, 3): the tile blended with its colour-mapped heatmap (``alpha``: heat)."""
    img = np.asarray(image)
    heat = np.asarray(heatmap)
    if img.ndim != 3 or img.shape[-1] != 3 or heat.shape != img.shape[:2]:
        raise ValueError(
            f"image (H, W, 3) and heatmap (H, W) expected, got {img.shape}, {heat.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = _colormap(heat, cmap)[..., :3]
    mixed = (1.0 - alpha) * img.astype(np.float64) / 255.0 + alpha * rgb
    return np.clip(np.round(mixed * 255.0), 0, 255).astype(np.uint8)


def heatmap_rgba(heatmap: np.ndarray, *, cmap: str = "jet", max_alpha: float = 0.8) -> np.ndarray:
    """uint8 RGBA (H, W, 4): colour-mapped heat, more opaque where hotter (for map layers)."""
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, 1.0)
    rgba = _colormap(heat, cmap)
    rgba[..., 3] = heat * max_alpha
    return np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) RGB or (H, W, 4) RGBA array."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"uint8 (H, W, 3|4) expected, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGBA" if arr.shape[-1] == 4 else "RGB").save(buf, format="PNG")
    return buf.getvalue()


def year_panel(
    model: nn.Module,
    tiles_by_year: Mapping[int, np.ndarray],
    *,
    tile_names: Sequence[str] | None = None,
    layer: str | nn.Module | None = None,
    alpha: float = 0.45,
    cmap: str = "jet",
    cell_inches: float = 1.6,
) -> bytes:
    """PNG bytes of a panel: one row per tile, one column per year, Grad-CAM overlay + siScore.

    ``tiles_by_year`` maps year -> uint8 (T, H, W, 3), the same T tiles in the same order
    every year (e.g. the paper's Fig. 6: one place, 2016..2019).  Titles give the year and the
    tile's siScore that year, since heatmaps are normalised per image.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from siscore_assets.core.models.scorer import score_images

    years = sorted(tiles_by_year)
    if not years:
        raise ValueError("tiles_by_year is empty")
    stacks = {y: check_images(tiles_by_year[y]) for y in years}
    t = stacks[years[0]].shape[0]
    if t == 0 or any(s.shape[0] != t for s in stacks.values()):
        raise ValueError("every year needs the same, non-zero number of tiles")
    names = list(tile_names) if tile_names is not None else [f"tile {i}" for i in range(t)]
    if len(names) != t:
        raise ValueError(f"{len(names)} tile names for {t} tiles")
    fig, axes = plt.subplots(
        t, len(years), figsize=(cell_inches * len(years), cell_inches * t + 0.2), squeeze=False
    )
    for j, y in enumerate(years):
        heat = gradcam(model, stacks[y], layer=layer)
        scores = score_images(model, stacks[y])
        for i in range(t):
            ax = axes[i][j]
            ax.imshow(overlay(stacks[y][i], heat[i], alpha=alpha, cmap=cmap))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{y} · {scores[i]:.3f}", fontsize=8)
            if j == 0:
                ax.set_ylabel(names[i], fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def largest_change_tiles(
    grids: dict[int, pd.DataFrame], n: int, col: str = "raw_score"
) -> list[str]:
    """The ``n`` tile ids scored every year whose ``col`` changed most between the first and the
    last year (ties in a stable order): the tiles worth a Grad-CAM look."""
    years = sorted(grids)
    by_tile = {y: g.set_index("tile_id") for y, g in grids.items()}
    common = sorted(set.intersection(*(set(g.index) for g in by_tile.values())))
    change = (by_tile[years[-1]].loc[common, col] - by_tile[years[0]].loc[common, col]).abs()
    return list(change.sort_values(ascending=False, kind="stable").index[:n])
