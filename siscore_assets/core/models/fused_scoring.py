"""The scorer's seeds run as one pass: what the seeds share is computed once per batch.

:func:`scorer.score_images` calls each seed's :class:`~scorer.ScorerModel` on the same tensor, and
each seed recomputes the same things: the 64 px CNN input area-resampled from the 256 px tile and
the colour / fine-texture statistics at native resolution (the costliest part of the ``cpu``
recipe after the networks: ~40 % of a seed's time, measured in ``benchmarks/scale_recipe.py``).
Here they are computed once and only the networks and heads run per seed, with the same
operations on the same tensors, so the scores are the same numbers (tested to 0 difference).

The parts can also be computed once per tile-year and stored (:mod:`scorer_parts`): then
scoring reads a 64 px input and a row of statistics instead of a 256 px tile, and a retrained
scorer of the same recipe re-scores a year without touching the native tiles.
"""

from __future__ import annotations

import numpy as np
import torch

from siscore_assets.core.models.common import (
    check_images,
    images_to_tensor,
    iter_batches,
)
from siscore_assets.core.models.scorer import (
    ScorerEnsemble,
    ScorerModel,
    cnn_input,
    raw_statistics,
)

#: Tiles converted and measured at native size at a time: the statistics are per tile (the same
#: numbers in any chunk, tested), and a 256-tile batch of 256 px floats would hold ~1 GB per
#: worker in temporaries; the networks still see the whole batch.
STAT_CHUNK = 32


def members(model: ScorerModel | ScorerEnsemble) -> list[ScorerModel]:
    """The seeds of an ensemble, or the one model."""
    return list(model.members) if isinstance(model, ScorerEnsemble) else [model]


def optimised_nets(model: ScorerModel | ScorerEnsemble) -> list[torch.nn.Module]:
    """Each seed's ResNet frozen for inference (batch norm folded into the convolutions, fused
    oneDNN kernels: ~1.3-2x on these CPUs).  Not bit-identical: scores move by ~1e-7 (measured
    <= 1.2e-7 on PRK's tiles, ranks unchanged), so it is opt-in."""
    import warnings

    nets = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still fastest
        for m in members(model):
            nets.append(torch.jit.optimize_for_inference(torch.jit.script(m.net.eval())))
    return nets


def scores_from_parts(
    model: ScorerModel | ScorerEnsemble,
    cnn_in: torch.Tensor,
    raw: torch.Tensor | None,
    nets: list[torch.nn.Module] | None = None,
) -> torch.Tensor:
    """The model's output (float32, one per image) from the CNN input and the raw statistics:
    each seed's network (or ``nets``, :func:`optimised_nets`) and head, then their mean as
    :class:`ScorerEnsemble` takes it."""
    outs = [
        m.score_from(cnn_in, raw, nets[i] if nets else None) for i, m in enumerate(members(model))
    ]
    return outs[0] if len(outs) == 1 else torch.stack(outs).mean(dim=0)


@torch.inference_mode()
def score_images_fused(
    model: ScorerModel | ScorerEnsemble,
    images: np.ndarray,
    batch_size: int = 256,
    nets: list[torch.nn.Module] | None = None,
) -> np.ndarray:
    """:func:`scorer.score_images` (without the uninhabited mask): the same scores, float64,
    with the CNN input and the statistics computed once per batch for all seeds."""
    imgs = check_images(images)
    out = np.zeros(imgs.shape[0], dtype=np.float64)
    model.eval()
    dev = next(model.parameters()).device
    cfg = model.config
    for sl in iter_batches(len(imgs), batch_size):
        raws, cnns = [], []
        for sub in iter_batches(sl.stop - sl.start, STAT_CHUNK):  # native-size tensors: small
            chunk = imgs[sl][sub]
            x = images_to_tensor(chunk, cfg.tensor_px, device=dev, normalize=cfg.normalize)
            if cfg.colour_stats:
                raws.append(raw_statistics(x, cfg.input_px, cfg.texture_px))
            cnns.append(cnn_input(x, cfg.input_px, cfg.normalize, cfg.grayscale))
            del x
        raw = torch.cat(raws) if raws else None
        out[sl] = scores_from_parts(model, torch.cat(cnns), raw, nets).double().cpu().numpy()
    return out
