"""Change scored only where a place changed, against the plain difference of two scores (SYN).

For each year pair of the embedded country, the co-registered tiles A (earlier) and B (later),
brought to one radiometry as the pipeline does (``radiometry: relative``), get a change mask: the
pixels whose largest band difference exceeds the tile's median + ``k`` x MAD and ``min_abs`` grey
levels, dilated by ``dilate`` px.  The localised delta is the mean of score(A with B's pixels
under the mask) - score(A) and score(B) - score(B with A's pixels there): the unchanged pixels
carry the same scene into both terms, so the year's nuisance outside the change cancels.
Prints rho over changed tiles, rho against the log change and sign accuracy in the top decile
(``core/analysis/change.change_figures``) per pair, for the plain delta and each mask setting.
docs/change.md section 3 has the result (no better than the plain difference).

    python -m benchmarks.change_localised --models <a make demo run>/SYN/models [--mask 3,10,1]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from benchmarks import change_bench
from siscore_assets.core.analysis import change
from siscore_assets.core.imagery.synthetic import ChangeVariant, SyntheticCountry, SyntheticSpec
from siscore_assets.core.models import scorer


def change_mask(a: np.ndarray, b: np.ndarray, k: float, min_abs: float, dilate: int) -> np.ndarray:
    """(n, p, p) bool: pixels of uint8 (n, p, p, 3) tiles ``a`` and ``b`` whose largest band
    difference is above the tile's median + ``k`` x MAD (scaled to a normal sd) and ``min_abs``."""
    d = np.abs(b.astype(np.float32) - a.astype(np.float32)).max(axis=-1)
    flat = d.reshape(len(d), -1)
    med = np.median(flat, axis=1)
    mad = np.median(np.abs(flat - med[:, None]), axis=1) * 1.4826
    mask = d > np.maximum(med + k * mad, min_abs)[:, None, None]
    if dilate:
        mask = ndimage.binary_dilation(mask, np.ones((1, 3, 3), bool), iterations=dilate)
    return mask


def localised_delta(score, a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of the two one-sided deltas through the composites (``score``: images -> scores)."""
    m = mask[..., None]
    forward = score(np.where(m, b, a)) - score(a)
    backward = score(b) - score(np.where(m, a, b))
    return (forward + backward) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, type=Path, help="a SYN run's models/ folder")
    ap.add_argument(
        "--mask", action="append", default=[], metavar="K,MIN_ABS,DILATE", help="default 3,10,1"
    )
    ap.add_argument("--variant", action="store_true", help="the harder SYN variant instead")
    args = ap.parse_args()
    torch.set_num_threads(2)
    masks = [tuple(float(v) for v in m.split(",")) for m in args.mask] or [(3.0, 10.0, 1.0)]
    spec = SyntheticSpec()
    country = ChangeVariant(spec) if args.variant else SyntheticCountry(spec)
    net = scorer.load_scorer(args.models / "scorer.pt", device="cpu")
    floor, inhabited, _ = change_bench.truth_frames(country)
    _, usable, images = change_bench.years_as_scored(country, "relative")
    years = list(country.spec.years)
    base = {y: scorer.score_images(net, images[y]) for y in years}

    def figures(delta: np.ndarray, a: int, b: int) -> str:
        keep = (inhabited[a] | inhabited[b]).to_numpy() & usable[a] & usable[b]
        f = change.change_figures(
            delta[keep],
            (floor[b] - floor[a]).to_numpy()[keep],
            truth_from=floor[a].to_numpy()[keep],
        )
        return f"{f['rho_changed']:.3f} / {f['rho_changed_log']:.3f} / {f['sign_top']:.3f}"

    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch threads 2")
    print("# per pair: rho over changed tiles / rho vs log change / sign in the top decile")
    pairs = change.year_pairs(years)
    print("plain difference:", {f"{a}-{b}": figures(base[b] - base[a], a, b) for a, b in pairs})
    for k, min_abs, dilate in masks:
        t0, out = time.perf_counter(), {}
        for a, b in pairs:
            mask = change_mask(images[a], images[b], k, min_abs, int(dilate))
            delta = localised_delta(
                lambda x: scorer.score_images(net, x), images[a], images[b], mask
            )
            share = float(np.median(mask.mean(axis=(1, 2))))
            out[f"{a}-{b}"] = f"{figures(delta, a, b)} (mask {share:.3f})"
        print(f"localised k={k:g} min={min_abs:g} dilate={int(dilate)}:", out)
        print(f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
