"""End-to-end check of the ML modules on the synthetic country (no Dagster).

Runs the real chain: habitation pre-training on ``pretrain_set`` -> uninhabited filter on
every tile of every year -> embed + urban/rural k-means (K by silhouette) -> tier path(s)
from cluster mean TRUE development (or simulated annotators + ensemble, ``--pog annotators``)
with the uninhabited cluster K at the bottom -> scorer training -> score every tile of every
year -> per-year Spearman vs ``building_floor_area_m2`` (all tiles; truly inhabited only),
cluster eta^2 of true development, wall time per phase.

    .venv/bin/python benchmarks/eval_models_syn.py [--steps 300] [--pog truth|annotators]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.core.models.clustering import cluster_tiles
from siscore_assets.core.models.habitation import embed, predict_habitation, train_habitation
from siscore_assets.core.models.scorer import score_images, train_scorer


def eta_squared(values: np.ndarray, labels: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by the grouping ``labels``."""
    total = ((values - values.mean()) ** 2).sum()
    between = sum(
        (labels == g).sum() * (values[labels == g].mean() - values.mean()) ** 2
        for g in np.unique(labels)
    )
    return float(between / total) if total > 0 else float("nan")


def truth_paths(dev_by_cluster: dict[int, float], bottom: int) -> list[list[list[int]]]:
    """One path: clusters sorted by mean development, each its own tier, ``bottom`` first."""
    order = sorted(dev_by_cluster, key=lambda c: dev_by_cluster[c])
    tiers = [[bottom]] + [[c] for c in order]
    try:
        from siscore_assets.core.ranking import Pog

        return Pog.from_tiers(tiers).tier_paths()
    except ImportError:
        return [tiers]


def annotator_paths(country, dev_by_cluster: dict[int, float], bottom: int, seed: int):
    """Simulated annotators -> parse -> robust ensemble -> tier paths (uninhabited at bottom)."""
    from siscore_assets.core.ranking import ensemble, parse_line

    lines = country.simulate_annotators({**dev_by_cluster, bottom: 0.0}, seed=seed)
    ids = sorted([*dev_by_cluster, bottom])
    pogs = [parse_line(line, known_ids=ids) for line in lines.values()]
    res = ensemble(pogs, ids, names=list(lines))
    return res.pog.tier_paths(), res.tiers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-pretrain", type=int, default=600)
    ap.add_argument("--hab-epochs", type=int, default=12)
    ap.add_argument("--hab-px", type=int, default=32)
    ap.add_argument("--k-urban", type=str, default="3-8")
    ap.add_argument("--k-rural", type=str, default="3-8")
    ap.add_argument("--n-uninhabited", type=int, default=400)
    ap.add_argument("--pog", choices=("truth", "annotators"), default="truth")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--per-tier", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--alpha", type=float, default=5.0)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--mix", type=float, default=0.25)
    ap.add_argument("--px", type=int, default=32)
    ap.add_argument("--grayscale", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = leave)")
    ap.add_argument("--json", type=str, default="")
    ap.add_argument("--dump", type=str, default="", help="npz of scores/labels/truth")
    ap.add_argument("--cache", type=str, default="", help="pickle of rendered inputs (dev loop)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    times: dict[str, float] = {}

    def rng_of(s: str) -> range:
        lo, hi = (int(v) for v in s.split("-"))
        return range(lo, hi + 1)

    t = time.perf_counter()
    country = SyntheticCountry(SyntheticSpec())
    years = list(country.spec.years)
    if args.cache and Path(args.cache).exists():
        with open(args.cache, "rb") as fh:
            tiles, truth, pre_x, pre_y = pickle.load(fh)
    else:
        tiles = {y: country.tile_images(y) for y in years}
        truth = {y: country.tile_truth(y) for y in years}
        pre_x, pre_y = country.pretrain_set(args.n_pretrain, seed=args.seed)
        if args.cache:
            with open(args.cache, "wb") as fh:
                pickle.dump((tiles, truth, pre_x, pre_y), fh)
    times["render"] = time.perf_counter() - t

    t = time.perf_counter()
    hab, hist = train_habitation(
        pre_x, pre_y, epochs=args.hab_epochs, seed=args.seed, input_px=args.hab_px
    )
    times["habitation_train"] = time.perf_counter() - t

    t = time.perf_counter()
    all_imgs = np.concatenate([tiles[y] for y in years])
    proba = predict_habitation(hab, all_imgs)
    feats = embed(hab, all_imgs)
    times["habitation_predict_embed"] = time.perf_counter() - t
    inhabited = proba[:, 2] < 0.5
    urban = proba[:, 0] > proba[:, 1]
    t_inh = np.concatenate([truth[y]["inhabited"].to_numpy() for y in years])
    t_urb = np.concatenate([truth[y]["urban"].to_numpy() for y in years])
    dev = np.concatenate([truth[y]["development"].to_numpy() for y in years])
    floor = np.concatenate([truth[y]["building_floor_area_m2"].to_numpy() for y in years])

    t = time.perf_counter()
    res = cluster_tiles(
        feats[inhabited],
        urban[inhabited],
        k_range_urban=rng_of(args.k_urban),
        k_range_rural=rng_of(args.k_rural),
        seed=args.seed,
    )
    times["cluster"] = time.perf_counter() - t
    k = res.n_clusters
    labels = np.full(len(all_imgs), k, dtype=np.int64)  # K = uninhabited
    labels[inhabited] = res.labels
    dev_by_cluster = {c: float(dev[labels == c].mean()) for c in range(k)}
    if args.pog == "truth":
        paths, tiers = truth_paths(dev_by_cluster, k), None
    else:
        paths, tiers = annotator_paths(country, dev_by_cluster, k, args.seed)

    rng = np.random.default_rng(args.seed)
    by_cluster = {c: all_imgs[labels == c] for c in range(k)}
    uninh = np.flatnonzero(labels == k)
    by_cluster[k] = all_imgs[rng.choice(uninh, min(args.n_uninhabited, len(uninh)), replace=False)]

    t = time.perf_counter()
    model, shist = train_scorer(
        by_cluster,
        paths,
        steps=args.steps,
        per_tier=args.per_tier,
        lr=args.lr,
        alpha_linearity=args.alpha,
        regularization_strength=args.reg,
        mix_fraction=args.mix,
        seed=args.seed,
        input_px=args.px,
        grayscale=args.grayscale,
    )
    times["scorer_train"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = score_images(model, all_imgs)
    times["score_all"] = time.perf_counter() - t
    t = time.perf_counter()
    scores_f = score_images(model, all_imgs, uninhabited=~inhabited)
    times["score_filtered"] = time.perf_counter() - t

    n = len(tiles[years[0]])
    out = {
        "n_tiles": int(len(all_imgs)),
        "habitation_last_epoch": hist[-1],
        "filter_vs_truth": {
            "inhabited_acc": float((inhabited == t_inh).mean()),
            "urban_acc_on_inhabited": float((urban == t_urb)[t_inh & inhabited].mean()),
        },
        "k_urban": res.k_urban,
        "k_rural": res.k_rural,
        "silhouettes": {
            g: {int(kk): round(v, 3) for kk, v in s.items()} for g, s in res.silhouettes.items()
        },
        "eta2_dev_inhabited_clusters": eta_squared(dev[inhabited], labels[inhabited]),
        "eta2_dev_all_with_uninhabited": eta_squared(dev, labels),
        "n_paths": len(paths),
        "tiers": tiers,
        "cluster_mean_dev": {
            c: round(v, 3) for c, v in sorted(dev_by_cluster.items(), key=lambda kv: kv[1])
        },
        "final_steps": shist[-1],
        "rho": {},
        "times_s": {kk: round(v, 2) for kk, v in times.items()},
    }
    for i, y in enumerate(years):
        sl = slice(i * n, (i + 1) * n)
        s, f, inh = scores[sl], floor[sl], t_inh[sl]
        out["rho"][y] = {
            "all": round(float(spearmanr(s, f).statistic), 4),
            "all_filtered": round(float(spearmanr(scores_f[sl], f).statistic), 4),
            "inhabited": round(float(spearmanr(s[inh], f[inh]).statistic), 4),
            "dev_all": round(float(spearmanr(s, dev[sl]).statistic), 4),
        }
    if args.dump:
        np.savez(
            args.dump,
            scores=scores,
            scores_f=scores_f,
            labels=labels,
            dev=dev,
            floor=floor,
            proba=proba,
            t_inh=t_inh,
            t_urb=t_urb,
        )
    print(json.dumps(out, indent=1, default=str))
    print("\nyear  rho_all  rho_all(uninhabited->0)  rho_inhabited")
    for y, r in out["rho"].items():
        print(
            f"{y}  {r['all']:.3f}    {r['all_filtered']:.3f}                    {r['inhabited']:.3f}"
        )
    print("times (s):", ", ".join(f"{kk} {v}" for kk, v in out["times_s"].items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
