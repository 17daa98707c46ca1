"""The real-imagery recipe on the North Korea sample, outside Dagster, with the internal validation
figures of issue 10 (held-out labels, held-out cluster order, year-to-year agreement) per seed.

Splits (all seeded, fixed): 20 % of the 1,250 labelled images held out (never trained on, never
used for selection) and 15 % of the rest for selection only (no stage, pretraining included, trains
on them), as ``splits.label_splits``; 10 of the 50 images of each cluster held out as the test
split; 5 of the remaining 40 are the validation split checkpoint selection uses.  The district's
tiles (all years, unlabelled; a third held out, as in the `scorer` asset, and their year
agreement reported as ``heldout_year_rho_*``) and the training cluster images feed the
mean-teacher and year-consistency terms.

    python -m benchmarks.nk_recipe --seeds 0 1 2 [--set steps=60 rank_loss=softrank ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from siscore_assets.core import ranking as pogs
from siscore_assets.core.analysis import validation as val
from siscore_assets.core.analysis.validation import development_index
from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.model_settings import ModelSettings, recipe_settings
from siscore_assets.core.models import (
    colour_stats,
    habitation,
    pretraining,
    scorer_training,
    splits,
)
from siscore_assets.core.models.scorer import save_scorer, score_images
from siscore_assets.defs.common.data import YEAR_HOLDOUT_SHARE

BOTTOM = 22


def load(px: int, seed: int = 0, selection_share: float = 0.15) -> dict:
    country = load_countries().get("PRK")
    images, labels, _ = tf.read_pretrain_folder(country.resolve(country.pretrain), px=px)
    lab_train, lab_sel, lab_held = splits.label_splits(labels, 0.2, selection_share, seed)
    clusters, _ = tf.read_cluster_folder(country.resolve(country.clusters), px=px)
    ids = sorted(clusters)
    found = pogs.read_annotation_folder(country.annotation_folder(None), known_ids=ids)
    tiers = [sorted(t) for t in pogs.ensemble(list(found.values()), ids, names=list(found)).tiers]
    rank = pogs.tier_ranks(tiers)
    train, valid, test = splits.cluster_splits(clusters, 10, 5, seed)
    tiles = {}
    for year in country.years:
        files, _ = tf.list_year_tiles(tf.tiles_dir(country) / str(year), country.zoom)
        index, stack = tf.cut_tile_folder(files, country.zoom, max_cloud=1.01, tile_px=px)
        ok = index[index["image_row"] >= 0]
        tiles[year] = (ok["tile_id"].tolist(), stack[ok["image_row"].to_numpy()])
    paths = pogs.Pog.from_tiers(tiers).with_bottom(BOTTOM).tier_paths()
    held_tiles = set(
        splits.holdout_ids({t for ids, _ in tiles.values() for t in ids}, YEAR_HOLDOUT_SHARE, seed)
    )
    return {
        "images": images,
        "labels": labels,
        "lab_train": lab_train,
        "lab_sel": lab_sel,
        "lab_held": lab_held,
        "train": train,
        "val": valid,
        "test": test,
        "rank": rank,
        "paths": paths,
        "tiles": tiles,
        "held_tiles": held_tiles,
    }


def unlabelled(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """District tile-years (grouped by tile id; the held-out tiles left out, as the `scorer` asset
    does) + training / validation cluster images (alone)."""
    imgs, groups = [], []
    for ids, stack in d["tiles"].values():
        keep = [i for i, t in enumerate(ids) if t not in d["held_tiles"]]
        imgs.append(stack[keep])
        groups += [ids[i] for i in keep]
    for part in ("train", "val"):
        for c, v in d[part].items():
            imgs.append(v)
            groups += [f"c{c}_{part}_{i}" for i in range(len(v))]
    return np.concatenate(imgs), np.asarray(groups)


def figures(score_fn, d: dict) -> tuple[dict, pd.DataFrame]:
    held = val.label_agreement(score_fn(d["images"][d["lab_held"]]), d["labels"][d["lab_held"]])
    means = {c: float(score_fn(v).mean()) for c, v in d["test"].items()}
    years = pd.DataFrame(
        {y: pd.Series(score_fn(s), index=ids) for y, (ids, s) in d["tiles"].items()}
    )
    held_years = val.year_agreement(years.loc[years.index.isin(d["held_tiles"])])
    return {
        **held,
        "test_cluster_order": pogs.cluster_order(means, d["rank"]),
        **val.year_agreement(years),
        **{f"heldout_{k}": v for k, v in held_years.items()},
    }, years


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--recipe", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    ap.add_argument("--no-pretrain", action="store_true")
    ap.add_argument(
        "--pretrained", help="a habitation.pt to start from (e.g. a PRK run's data/PRK/models/)"
    )
    ap.add_argument("--out", default="/tmp/nk_recipe")
    ap.add_argument(
        "--evaluate", nargs="+", help="only score saved scorer checkpoints (e.g. a PRK run's)"
    )
    args = ap.parse_args()
    if args.evaluate:
        evaluate_checkpoints(args.evaluate)
        return
    over = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        cur = getattr(recipe_settings(args.recipe), k)
        over[k] = (v.lower() == "true") if isinstance(cur, bool) else type(cur)(v)
    recipe = recipe_settings(args.recipe, **over)
    if args.no_pretrain:
        recipe = recipe.with_overrides(from_pretrained=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    d = load(recipe.tensor_px, selection_share=recipe.label_selection_share)
    print(
        f"loaded in {time.perf_counter() - t0:.0f} s; threads {torch.get_num_threads()}", flush=True
    )
    un, groups = unlabelled(d)
    # pretraining once per (pretraining settings): cached
    pre_key = hashlib.sha1(
        repr(
            [
                getattr(recipe, f)
                for f in type(recipe).model_fields
                if f.startswith("pretrain")
                or f
                in (
                    "consistency_weight",
                    "rampup_epochs",
                    "ema_decay",
                    "colour_jitter",
                    "label_selection_share",
                )
            ]
        ).encode()
    ).hexdigest()[:10]
    pre = None
    if not args.no_pretrain:
        pre_path = Path(args.pretrained) if args.pretrained else out / f"pretrain_{pre_key}.pt"
        if pre_path.is_file():
            pre = habitation.load_habitation(pre_path)
        else:
            t1 = time.perf_counter()
            pre, hist = pretraining.train_pretrained(
                d["images"][d["lab_train"]],
                d["labels"][d["lab_train"]],
                recipe,
                unlabelled=un,
                groups=groups,
                seed=0,
            )
            habitation.save_habitation(pre, pre_path)
            print(f"pretrained in {time.perf_counter() - t1:.0f} s: {hist[-1]}", flush=True)
        ev = habitation.evaluate_habitation(
            pre, d["images"][d["lab_held"]], d["labels"][d["lab_held"]]
        )
        print("habitation held-out:", {k: round(v, 3) for k, v in ev.items()}, flush=True)
    pools = dict(d["train"])
    lab_tr = d["lab_train"]
    pools[BOTTOM] = d["images"][lab_tr][d["labels"][lab_tr].argmax(1) == 2]
    rows, all_years = [], []
    for seed in args.seeds:
        t1 = time.perf_counter()
        index = development_index(d["labels"])
        inputs = scorer_training.TrainingInputs(
            pools,
            d["paths"],
            val=d["val"],
            cluster_rank=d["rank"],
            labelled=(d["images"][lab_tr], index[lab_tr]),
            selection=(d["images"][d["lab_sel"]], index[d["lab_sel"]]),
            unlabelled=un,
            groups=groups,
        )
        model, hist = scorer_training.train_scorer(inputs, recipe, seed=seed, pretrained=pre)
        f, years = figures(lambda x, m=model: score_images(m, x), d)
        kept = scorer_training.selected_entry(hist)
        f.update(
            seed=seed,
            train_s=time.perf_counter() - t1,
            selected=kept.get("step", -1),
            **{
                k: kept[k]
                for k in ("val_cluster_order", "val_label_order", "val_selection")
                if k in kept
            },
            **{k: v for k, v in (hist[0] if hist else {}).items() if k.startswith("start_val")},
        )
        rows.append(f)
        all_years.append(years)
        save_scorer(model, out / f"scorer_seed{seed}.pt")
        if recipe.colour_stats:
            ys = year_standardised(model, d)
            print(
                "  per-year standardised statistics:",
                json.dumps({k: round(v, 3) for k, v in ys.items() if k.startswith("year_rho")}),
                flush=True,
            )
        print(
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()}),
            flush=True,
        )
    spread = val.seed_spread(rows)
    ens_years = sum(all_years) / len(all_years)
    ens = val.year_agreement(ens_years)
    ens_years.to_csv(out / "ensemble_tile_scores.csv")
    feat = feature_baseline(d, recipe)
    summary = {
        "recipe": recipe.model_dump(mode="json"),
        "pretrained": pre is not None,
        "seeds": rows,
        "spread": spread,
        "ensemble_year": ens,
        "feature_ranker": feat,
        "wall_s": time.perf_counter() - t0,
    }
    print("spread:", json.dumps({k: round(v, 3) for k, v in spread.items()}))
    print("ensemble year agreement:", json.dumps({k: round(v, 3) for k, v in ens.items()}))
    print(
        "feature ranker:",
        json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in feat.items()}),
    )
    tag = "_".join(args.set) or "default"
    (out / f"summary_{args.recipe}_{tag}{'_nopre' if args.no_pretrain else ''}.json").write_text(
        json.dumps(summary, indent=1, default=float)
    )


def year_standardised(model, d: dict) -> dict:
    """Year agreement when each year's tile statistics are standardised over the district's tiles
    (the same places every year) and mapped onto the all-years distribution (CNN unchanged)."""
    cfg = model.config
    stats = {
        y: torch.from_numpy(
            colour_stats.image_stats(s, cfg.input_px, texture_px=cfg.texture_px)
        ).float()
        for y, (_, s) in d["tiles"].items()
    }
    allst = torch.cat(list(stats.values()))
    mu_d, sd_d = allst.mean(0), allst.std(0).clamp_min(1e-6)
    m0, s0 = model.stat_mean.clone(), model.stat_std.clone()
    cols = {}
    for y, (ids, s) in d["tiles"].items():
        mu_y, sd_y = stats[y].mean(0), stats[y].std(0).clamp_min(1e-6)
        model.stat_mean.copy_(mu_y - (mu_d - m0) * sd_y / sd_d)
        model.stat_std.copy_(s0 * sd_y / sd_d)
        cols[y] = pd.Series(score_images(model, s), index=ids)
    model.stat_mean.copy_(m0)
    model.stat_std.copy_(s0)
    return val.year_agreement(pd.DataFrame(cols))


def evaluate_checkpoints(paths: list[str]) -> None:
    """The figures of saved scorers (the PRK run's splits: seed 0, 20 % / 10 + 5)."""
    from siscore_assets.core.models import scorer as scorer_lib

    d = None
    for path in paths:
        model = scorer_lib.load_scorer(path)
        if d is None:
            d = load(model.config.tensor_px)
        f, _ = figures(lambda x, m=model: scorer_lib.score_images(m, x), d)
        print(
            path,
            json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()}),
            flush=True,
        )
    print(
        "feature ranker:",
        json.dumps(
            {
                k: round(v, 3) if isinstance(v, float) else v
                for k, v in feature_baseline(d, recipe_settings("cpu")).items()
            }
        ),
    )


def feature_baseline(d: dict, recipe: ModelSettings) -> dict:
    pools = dict(d["train"])
    lab_tr = d["lab_train"]
    pools[BOTTOM] = d["images"][lab_tr][d["labels"][lab_tr].argmax(1) == 2]
    rank = {**d["rank"], BOTTOM: -1.0}
    ranker = colour_stats.fit_feature_ranker(
        pools, rank, px=recipe.input_px, texture_px=recipe.texture_px
    )
    return figures(ranker.score, d)[0]


if __name__ == "__main__":
    main()
