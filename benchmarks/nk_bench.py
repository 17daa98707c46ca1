"""Scorer training time per epoch and scoring throughput on the real North Korea sample.

Epoch = one pass over the 22 x 40 training images (880): with ``sampling: cluster`` a step
draws ``per_tier`` images from every cluster (plus the cut-mixed images of the linearity loss),
so an epoch is 40 / per_tier steps.  Scoring throughput: tiles/s for the 415 yearly tiles
already in memory at the scorer's input size (the model alone), and end to end from the PNG
files (decode + resize + score).  Uses CUDA when present, else the CPU (threads = torch's
default).  Settings come from the PRK entry of the countries file.

    python -m benchmarks.nk_bench [--steps 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from benchmarks.nk_heldout import TRAIN_PER_CLUSTER, load_sample
from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models.common import choose_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--steps", type=int, default=20, help="training steps timed (after 2 warm-up steps)"
    )
    ap.add_argument("--repeat", type=int, default=5, help="scoring passes over the 415 tiles")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    country = load_countries().get("PRK")
    m = country.models
    dev = choose_device(args.device)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; input {m.input_px} px, grayscale={m.grayscale}"
    )
    sample = load_sample(country, m.input_px)
    kw = dict(
        per_tier=m.per_tier,
        lr=m.scorer_lr,
        alpha_linearity=m.alpha_linearity,
        input_px=m.input_px,
        grayscale=m.grayscale,
        normalize=m.normalize,
        sampling=m.sampling,
        device=dev,
        seed=0,
    )
    scorer_lib.train_scorer(
        sample.train, sample.paths, steps=2, **kw
    )  # warm-up (allocator, kernels)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model, history = scorer_lib.train_scorer(sample.train, sample.paths, steps=args.steps, **kw)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - t0) / args.steps
    n_clusters = len(sample.train)
    per_step_images = (
        n_clusters * m.per_tier if m.sampling == "cluster" else len(sample.paths[0]) * m.per_tier
    )
    steps_per_epoch = n_clusters * TRAIN_PER_CLUSTER / per_step_images
    print(
        f"training: {per_step:.3f} s/step ({per_step_images} ranked images/step + cut-mixes), "
        f"{steps_per_epoch:.1f} steps/epoch -> {per_step * steps_per_epoch:.2f} s/epoch "
        f"(epoch = {n_clusters} x {TRAIN_PER_CLUSTER} images); "
        f"PRK's {m.scorer_steps} steps x {max(1, len(m.scorer_seeds))} seed(s) = "
        f"{per_step * m.scorer_steps * max(1, len(m.scorer_seeds)):.0f} s"
    )
    model = model.to(dev)
    tiles = np.concatenate([imgs for _, imgs in sample.tiles.values()])
    scorer_lib.score_images(model, tiles[:64])
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        scorer_lib.score_images(model, tiles)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    rate = args.repeat * len(tiles) / (time.perf_counter() - t0)
    print(f"scoring (one member, tiles in memory at {m.input_px} px): {rate:.0f} tiles/s")
    t0 = time.perf_counter()
    n = 0
    for year in country.years:
        files, _ = tf.list_year_tiles(tf.tiles_dir(country) / str(year), country.zoom)
        index, stack = tf.cut_tile_folder(files, country.zoom, max_cloud=0.15)
        scorer_lib.score_images(model, stack)
        n += len(stack)
    print(
        f"scoring end to end (PNG decode at 256 px + resize + score): {n / (time.perf_counter() - t0):.0f} tiles/s"
    )


if __name__ == "__main__":
    main()
