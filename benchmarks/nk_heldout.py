"""Held-out check of the rank-wise scorer on the real North Korea sample, and its stability.

For each seed: train on 40 of the 50 images of each of the paper's 22 clusters (ensembled POG
of the 10 real annotators), score the other 10, and report the Spearman rho between held-out
cluster-mean scores and the ensemble's tier order (and per image); then score the 415 yearly
tiles and report the rank correlation of a tile's score between consecutive years and how many
tiles change 2016 -> 2019 by more than the year-to-year noise.  Finally the same figures for
the seed ensemble (mean score).  Settings come from the PRK entry of the countries file.

    python -m benchmarks.nk_heldout --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from siscore_assets.core import ranking as pogs
from siscore_assets.core.countries import CountryConfig, load_countries
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import scorer as scorer_lib

TRAIN_PER_CLUSTER = 40
UNINHABITED = 22


@dataclass
class Sample:
    train: dict[int, np.ndarray]
    test: dict[int, np.ndarray]
    rank: dict[int, float]  # tier index, 0 = least developed
    paths: list[list[list[int]]]
    tiles: dict[int, tuple[list[str], np.ndarray]]  # year -> (tile ids, images)


def ensemble_tiers(country: CountryConfig, ids: list[int]) -> list[list[int]]:
    found = pogs.read_annotation_folder(country.annotation_folder(None), known_ids=ids)
    return [sorted(t) for t in pogs.ensemble(list(found.values()), ids, names=list(found)).tiers]


def split_clusters(images: dict[int, np.ndarray], n_train: int, seed: int) -> tuple[dict, dict]:
    """Seeded split of each cluster's images into n_train for training and the rest held out."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for c, imgs in sorted(images.items()):
        order = rng.permutation(len(imgs))
        train[c], test[c] = imgs[np.sort(order[:n_train])], imgs[np.sort(order[n_train:])]
    return train, test


def load_sample(country: CountryConfig, px: int, split_seed: int = 0) -> Sample:
    images, problems = tf.read_cluster_folder(country.resolve(country.clusters), px=px)
    if problems:
        print(f"skipped {len(problems)} unreadable cluster image(s): {problems[:3]}")
    ids = sorted(images)
    tiers = ensemble_tiers(country, ids)
    rank = {c: float(i) for i, t in enumerate(tiers) for c in t}
    train, test = split_clusters(images, TRAIN_PER_CLUSTER, split_seed)
    paths = pogs.Pog.from_tiers(tiers).tier_paths()
    tiles = {}
    for year in country.years:
        files, _ = tf.list_year_tiles(tf.tiles_dir(country) / str(year), country.zoom)
        index, stack = tf.cut_tile_folder(files, country.zoom, max_cloud=1.01, tile_px=px)
        ok = index[index["image_row"] >= 0]
        tiles[year] = (ok["tile_id"].tolist(), stack[ok["image_row"].to_numpy()])
    return Sample(train, test, rank, paths, tiles)


def train(
    country: CountryConfig, sample: Sample, seed: int, select: bool
) -> tuple[scorer_lib.ScorerModel, list[dict]]:
    m = country.models
    sel_train, sel_val = sample.train, None
    if select and m.holdout_per_cluster:
        # Checkpoint selection must not see the test images: carve it from the 40 training ones.
        sel_train, sel_val = split_clusters(
            sample.train, TRAIN_PER_CLUSTER - m.holdout_per_cluster // 2, seed + 100
        )
    return scorer_lib.train_scorer(
        sel_train,
        sample.paths,
        steps=m.scorer_steps,
        per_tier=m.per_tier,
        lr=m.scorer_lr,
        alpha_linearity=m.alpha_linearity,
        seed=seed,
        input_px=m.input_px,
        grayscale=m.grayscale,
        normalize=m.normalize,
        sampling=m.sampling,
        holdout=sel_val,
        cluster_rank=sample.rank,
        eval_every=m.eval_every if select else 0,
    )


def year_scores(model, sample: Sample) -> pd.DataFrame:
    cols = {}
    for year, (ids, imgs) in sample.tiles.items():
        cols[year] = pd.Series(scorer_lib.score_images(model, imgs), index=ids)
    return pd.DataFrame(cols)


def score_model(model, sample: Sample) -> dict:
    """Everything the figures need from one model: held-out image scores and yearly tile scores."""
    held = {c: scorer_lib.score_images(model, sample.test[c]) for c in sorted(sample.test)}
    return {"held": held, "scores": year_scores(model, sample)}


def evaluate(scored: dict, sample: Sample) -> dict:
    held, scores = scored["held"], scored["scores"]
    means = {c: float(v.mean()) for c, v in held.items()}
    cs = sorted(means)
    rho_c = float(spearmanr([means[c] for c in cs], [sample.rank[c] for c in cs]).statistic)
    s = np.concatenate([held[c] for c in cs])
    t = np.concatenate([[sample.rank[c]] * len(held[c]) for c in cs])
    years = list(scores.columns)
    yy = {
        f"{a}-{b}": float(spearmanr(scores[a], scores[b], nan_policy="omit").statistic)
        for a, b in zip(years, years[1:])
    }
    diffs = np.concatenate(
        [(scores[b] - scores[a]).dropna().to_numpy() for a, b in zip(years, years[1:])]
    )
    noise = 1.4826 * float(
        np.median(np.abs(diffs - np.median(diffs)))
    )  # robust sd of yearly change
    change = (scores[years[-1]] - scores[years[0]]).dropna()
    return {
        "heldout_rho": rho_c,
        "heldout_rho_images": float(spearmanr(s, t).statistic),
        "means": means,
        "yy": yy,
        "yy_mean": float(np.mean(list(yy.values()))),
        "noise_sd": noise,
        "changed": int((change.abs() > 2 * noise).sum()),
        "n_change": len(change),
        "scores": scores,
    }


def ensemble_of(scored: list[dict]) -> dict:
    """The seed ensemble's scores: the mean of its members' (what ScorerEnsemble computes)."""
    held = {c: np.mean([s["held"][c] for s in scored], axis=0) for c in scored[0]["held"]}
    return {"held": held, "scores": sum(s["scores"] for s in scored) / len(scored)}


def report(results: dict, sample: Sample) -> None:
    for key, r in results.items():
        label = f"seed {key}" if key != "ensemble" else "ensemble (mean of seeds)"
        print(
            f"{label}: held-out rho (cluster means vs tiers) {r['heldout_rho']:.3f}, per image "
            f"{r['heldout_rho_images']:.3f}; year-to-year rho {', '.join(f'{k} {v:.3f}' for k, v in r['yy'].items())}; "
            f"tiles changed 2016->2019 by > 2 x noise sd ({r['noise_sd']:.3f}): {r['changed']}/{r['n_change']}"
        )
    seeds = [k for k in results if k != "ensemble"]
    for key in ("heldout_rho", "heldout_rho_images", "yy_mean", "changed"):
        v = np.array([results[k][key] for k in seeds], dtype=float)
        print(
            f"spread over seeds {seeds}: {key} mean {v.mean():.3f} sd {v.std(ddof=1) if len(v) > 1 else 0:.3f} "
            f"min {v.min():.3f} max {v.max():.3f}"
        )
    if len(seeds) > 1:
        both = pd.concat([results[k]["scores"].stack() for k in seeds], axis=1).dropna()
        cross = [
            spearmanr(both.iloc[:, i], both.iloc[:, j]).statistic
            for i in range(len(seeds))
            for j in range(i + 1, len(seeds))
        ]
        print(
            f"tile-score rank agreement between seeds (all tile-years): mean {np.mean(cross):.3f}, min {np.min(cross):.3f}"
        )
    table = pd.DataFrame({str(k): pd.Series(results[k]["means"]) for k in results})
    table.insert(0, "tier", pd.Series(sample.rank))
    print("held-out mean score per cluster (tier 0 = least developed):")
    print(table.sort_values(["tier"]).round(3).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="override models.scorer_steps")
    ap.add_argument("--input-px", type=int, default=None, help="override models.input_px")
    ap.add_argument(
        "--grayscale", choices=["true", "false"], default=None, help="override models.grayscale"
    )
    ap.add_argument(
        "--no-select", action="store_true", help="keep the last step, no checkpoint selection"
    )
    ap.add_argument("--country", default="PRK")
    ap.add_argument("--out", type=Path, default=None, help="save each seed's scores here (pickle)")
    ap.add_argument(
        "--combine",
        type=Path,
        default=None,
        help="also read seeds saved with --out (run seeds as parallel processes, then combine)",
    )
    args = ap.parse_args()
    country = load_countries().get(args.country)
    from dataclasses import replace

    if args.steps is not None:
        country = replace(country, models=replace(country.models, scorer_steps=args.steps))
    if args.input_px is not None:
        country = replace(country, models=replace(country.models, input_px=args.input_px))
    if args.grayscale is not None:
        country = replace(
            country, models=replace(country.models, grayscale=args.grayscale == "true")
        )
    m = country.models
    print(
        f"{country.code}: input {m.input_px} px, grayscale={m.grayscale}, normalize={m.normalize}, "
        f"steps={m.scorer_steps}, per cluster per step={m.per_tier}, select={not args.no_select}"
    )
    t0 = time.perf_counter()
    sample = load_sample(country, m.input_px)
    print(
        f"loaded 22 clusters x 50 images and {sum(len(v[0]) for v in sample.tiles.values())} tiles "
        f"in {time.perf_counter() - t0:.1f} s; tiers (least first): "
        f"{[sorted(c for c in sample.rank if sample.rank[c] == i) for i in range(int(max(sample.rank.values())) + 1)]}"
    )
    scored = {}
    for seed in args.seeds:
        t1 = time.perf_counter()
        model, history = train(country, sample, seed, select=not args.no_select)
        scored[seed] = score_model(model, sample)
        picked = next((h for h in history if h.get("selected")), history[-1])
        print(
            f"seed {seed}: trained in {time.perf_counter() - t1:.0f} s, checkpoint step {picked['step']}",
            flush=True,
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"seed{seed}.pkl").write_bytes(pickle.dumps(scored[seed]))
    if args.combine:
        for path in sorted(args.combine.glob("seed*.pkl")):
            scored.setdefault(int(path.stem[4:]), pickle.loads(path.read_bytes()))
    results = {seed: evaluate(sc, sample) for seed, sc in sorted(scored.items())}
    if len(scored) > 1:
        results["ensemble"] = evaluate(ensemble_of(list(scored.values())), sample)
    report(results, sample)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
