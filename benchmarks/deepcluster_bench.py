"""DeepCluster cost per round and clustering quality vs plain k-means, on planted textures.

    python -m benchmarks.deepcluster_bench [--tiles 1000] [--px 32] [--rounds 3] [--seeds 0 1 2]

For each seed: 4 planted texture groups (``siscore_assets_tests.fixtures.texture_groups``;
groups 0-1 urban, 2-3 rural), the Stage-1 encoder at the production width (HabitationModel
default widths, ``input_px = px``) with random initial weights, then

* plain path: ``cluster_tiles(embed(model, tiles))`` (k-means, K by silhouette in 2..4 per group)
* DeepCluster: ``deepcluster(model, tiles, groups, rounds=R)`` then the same final clustering

and the adjusted Rand index of both against the planted groups.  Prints seconds per round
(features + k-means + one training epoch), training throughput in tiles/s, and a Grad-CAM
throughput line for the 32 px scorer.  CPU, torch threads as configured (default: all cores).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from siscore_assets.core.models.clustering import cluster_tiles
from siscore_assets.core.models.deepcluster import deepcluster
from siscore_assets.core.models.habitation import HabitationConfig, HabitationModel, embed
from siscore_assets_tests.fixtures.texture_groups import N_GROUPS, planted_textures

K_RANGE = [2, 3, 4]


def run_seed(seed: int, tiles: int, px: int, rounds: int, epochs: int) -> dict:
    images, truth = planted_textures(tiles // N_GROUPS, px, seed)
    urban = truth < 2
    torch.manual_seed(seed)
    model = HabitationModel(HabitationConfig(input_px=px)).eval()
    t0 = time.perf_counter()
    plain = cluster_tiles(
        embed(model, images), urban, k_range_urban=K_RANGE, k_range_rural=K_RANGE, seed=seed
    )
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    result, _, history = deepcluster(
        model,
        images,
        urban,
        k_range_urban=K_RANGE,
        k_range_rural=K_RANGE,
        rounds=rounds,
        seed=seed,
        epochs_per_round=epochs,
    )
    t_dc = time.perf_counter() - t0
    train_rounds = [h for h in history if h["loss"] is not None]
    return {
        "seed": seed,
        "tiles": len(images),
        "ari_kmeans": adjusted_rand_score(truth, plain.labels),
        "ari_deepcluster": adjusted_rand_score(truth, result.labels),
        "k": (result.k_urban, result.k_rural),
        "s_plain": t_plain,
        "s_total": t_dc,
        "s_per_round": [h["seconds"] for h in train_rounds],
        "cpu_s_per_round": [h["cpu_seconds"] for h in train_rounds],
        "tiles_per_s": [len(images) * epochs / h["seconds"] for h in train_rounds],
        "nmi": [h["nmi_previous"] for h in history[1:]],
    }


def gradcam_throughput(n: int = 256) -> float:
    from siscore_assets.core.models.gradcam import gradcam
    from siscore_assets.core.models.scorer import ScorerConfig, ScorerModel

    torch.manual_seed(0)
    model = ScorerModel(ScorerConfig(input_px=32)).eval()
    images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    gradcam(model, images[:8])  # warm-up: library import, first kernels
    t0 = time.perf_counter()
    gradcam(model, images)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=1000)
    ap.add_argument("--px", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1, help="training epochs per round")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-gradcam", action="store_true")
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, "
        f"CUDA {'yes' if torch.cuda.is_available() else 'no'} (run on CPU)"
    )
    print(
        f"{args.tiles} tiles at {args.px} px, {args.rounds} rounds x {args.epochs} epoch(s), "
        f"K in {K_RANGE} per group"
    )
    rows = []
    for seed in args.seeds:
        r = run_seed(seed, args.tiles, args.px, args.rounds, args.epochs)
        rows.append(r)
        print(
            f"seed {seed}: ARI k-means {r['ari_kmeans']:.3f} "
            f"-> DeepCluster {r['ari_deepcluster']:.3f} "
            f"(K urban/rural {r['k'][0]}/{r['k'][1]}); "
            f"plain path {r['s_plain']:.1f} s, DeepCluster "
            f"{r['s_total']:.1f} s; s/round {[round(s, 1) for s in r['s_per_round']]} "
            f"(CPU s {[round(s, 1) for s in r['cpu_s_per_round']]}); "
            f"tiles/s {[round(t) for t in r['tiles_per_s']]}; NMI between rounds "
            f"{[round(x, 2) for x in r['nmi']]}",
            flush=True,
        )
    per_round = [s for r in rows for s in r["s_per_round"]]
    tps = [t for r in rows for t in r["tiles_per_s"]]
    cpu = [s for r in rows for s in r["cpu_s_per_round"]]
    print(
        f"median s/round {statistics.median(per_round):.2f} wall, {statistics.median(cpu):.2f} CPU "
        f"(all threads); median tiles/s per round {statistics.median(tps):.0f}"
    )
    print(
        f"mean ARI k-means {np.mean([r['ari_kmeans'] for r in rows]):.3f}, "
        f"DeepCluster {np.mean([r['ari_deepcluster'] for r in rows]):.3f}; "
        f"DeepCluster >= k-means in "
        f"{sum(r['ari_deepcluster'] >= r['ari_kmeans'] for r in rows)}/{len(rows)} seeds"
    )
    if not args.no_gradcam:
        print(
            "Grad-CAM (ResNet-18 scorer, 32 px input, 64 px tiles, layer auto): "
            f"{gradcam_throughput():.0f} tiles/s"
        )


if __name__ == "__main__":
    main()
