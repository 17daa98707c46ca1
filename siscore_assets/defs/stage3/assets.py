"""Stage 3: the rank-wise scorer trained on the ensembled POG, and yearly siScore per tile."""


import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)
from scipy.stats import spearmanr

from siscore_assets.core import pog as pogs
from siscore_assets.core import tile_folder as tf
from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.files import atomic_path
from siscore_assets.core.models import scorer as scorer_lib

from ..common import OWNERS, country_only, country_year, frame_md, image_md, line_plot_md
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse
from ..stage1.assets import load_year_tiles
from ..stage2.assets import cluster_ids

GROUP = "stage3_scoring"
MAX_IMAGES_PER_CLUSTER = 400


def ensemble_tier_pog(warehouse: Warehouse, code: str) -> tuple[pogs.Pog, int]:
    """The ensembled POG with the uninhabited cluster below all, as the trainer sees it."""
    ens = warehouse.read("ensemble_pog", {"country": code}, order_by="tier")
    if ens.empty:
        raise FileNotFoundError(f"no ensemble POG for {code}: materialise 'ensemble_pog' first")
    _, bottom = cluster_ids(warehouse, code)
    tiers = [sorted(int(c) for c in g["cluster_id"]) for _, g in ens.groupby("tier", sort=True)]
    return pogs.Pog.from_tiers(tiers).with_bottom(bottom), bottom


def split_holdout(images_by_cluster: dict[int, np.ndarray], per_cluster: int, seed: int
                  ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Seeded split: ``per_cluster`` images of each cluster held out (at most half of it)."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for c, imgs in sorted(images_by_cluster.items()):
        k = min(per_cluster, len(imgs) // 2)
        order = rng.permutation(len(imgs))
        train[c], held[c] = imgs[np.sort(order[k:])], imgs[np.sort(order[:k])]
    return train, held


def training_pools(settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig) -> tuple[dict[int, np.ndarray], str]:
    """Scorer training images per cluster: the cluster folder's, else the country's own tiles."""
    m = country.models
    if country.clusters_from_folder:
        folder = country.resolve(country.clusters)
        pools, _ = tf.read_cluster_folder(folder, px=m.input_px)
        return pools, str(folder)
    rng = np.random.default_rng(m.seed)
    members = warehouse.read("cluster_members", {"country": country.code})
    images_by_cluster: dict[int, list[np.ndarray]] = {}
    for year in country.years:
        index, stack = load_year_tiles(settings, warehouse, country.code, year)
        mem = members[members["year"] == year].set_index("tile_id")["cluster_id"]
        cid = index["tile_id"].map(mem).to_numpy()
        for c in np.unique(cid[~pd.isna(cid)]).astype(int):
            images_by_cluster.setdefault(int(c), []).append(np.asarray(stack[np.flatnonzero(cid == c)]))
    pools = {}
    for c, parts in images_by_cluster.items():
        imgs = np.concatenate(parts)
        if len(imgs) > MAX_IMAGES_PER_CLUSTER:
            imgs = imgs[np.sort(rng.choice(len(imgs), MAX_IMAGES_PER_CLUSTER, replace=False))]
        pools[c] = imgs
    return pools, "cluster_members"


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"pytorch"},
        deps=["ensemble_pog", "clusters", "patches"],
        description="ResNet-18 scorer (no pretrained weights) trained so that images along every "
        "least->most path of the ensembled POG are ranked in path order: torchsort soft-rank "
        "Spearman loss + linearity loss on cut-mixed images. Checkpoint file; loss curves.",
    )
    def scorer(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        m = country.models
        pog, bottom = ensemble_tier_pog(warehouse, country.code)
        pools, origin = training_pools(settings, warehouse, country)
        paths = pog.tier_paths(seed=m.seed)
        rank_of = {c: float(i) for i, tier in enumerate(paths[0]) for c in tier} if pog.is_total() else {}
        train_pools, held = pools, None
        if m.holdout_per_cluster and rank_of:
            train_pools, held = split_holdout(pools, m.holdout_per_cluster, m.seed)
        seeds = list(m.scorer_seeds) or [m.seed]
        model, histories = scorer_lib.train_scorer_ensemble(
            train_pools, paths, seeds=seeds, steps=m.scorer_steps, per_tier=m.per_tier, lr=m.scorer_lr,
            alpha_linearity=m.alpha_linearity, input_px=m.input_px, grayscale=m.grayscale,
            normalize=m.normalize, sampling=m.sampling, holdout=held, cluster_rank=rank_of,
            eval_every=m.eval_every, device=settings.device,
        )
        model_dir = settings.country_dir(country.code) / "models"
        path = model_dir / "scorer.pt"
        members = list(model.members) if isinstance(model, scorer_lib.ScorerEnsemble) else [model]
        for seed, member in zip(seeds, members):
            scorer_lib.save_scorer(member, model_dir / f"scorer_seed{seed}.pt")
        scorer_lib.save_scorer(model, path)
        # How the scorer orders the clusters: held-out images when some were kept out, else training ones.
        check = held if held else {c: imgs[:64] for c, imgs in train_pools.items()}
        rows = []
        for c, imgs in sorted(check.items()):
            s = scorer_lib.score_images(model, imgs)
            rows.append({"cluster_id": c, "images": len(imgs), "mean_score": float(s.mean()),
                         "tier_rank": rank_of.get(c, np.nan)})
        fit = pd.DataFrame(rows)
        rho = float(spearmanr(fit["mean_score"], fit["tier_rank"], nan_policy="omit").statistic) if rank_of else float("nan")
        member_rho = {f"seed{sd}": scorer_lib.cluster_order_spearman(mm, check, rank_of)[0]
                      for sd, mm in zip(seeds, members)} if rank_of and len(members) > 1 else {}
        history = histories[0]
        window = max(1, len(history) // 30)
        smooth = lambda hist, key: pd.Series([h[key] for h in hist]).rolling(window, min_periods=1).mean().tolist()  # noqa: E731
        curves = {"loss": smooth(history, "loss"), "rank_loss": smooth(history, "rank_loss"),
                  "lin_loss": smooth(history, "lin_loss")}
        for sd, hist in zip(seeds[1:], histories[1:]):
            curves[f"loss seed {sd}"] = smooth(hist, "loss")
        selected = [next((h["step"] for h in hist if h.get("selected")), len(hist) - 1) for hist in histories]
        return MaterializeResult(metadata={
            "checkpoint": MetadataValue.path(str(path)), "steps": len(history), "paths": len(paths),
            "seeds": MetadataValue.json(seeds), "selected_steps": MetadataValue.json(selected),
            "training_images": int(sum(len(v) for v in train_pools.values())), "image_source": origin,
            "heldout_images": int(sum(len(v) for v in held.values())) if held else 0,
            "final_loss": float(np.mean([h["loss"] for h in history[-window:]])),
            "cluster_order_spearman": rho,
            "cluster_order_on": "held-out images" if held else "training images",
            **{f"cluster_order_spearman_{k}": v for k, v in member_rho.items()},
            "loss_curves": line_plot_md(curves, f"scorer training (seed {seeds[0]})"),
            "cluster_mean_scores": frame_md(fit),
        })

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"pytorch", "duckdb"},
        deps=["patches", "habitation", scorer],
        description="siScore in [0, 1] for every usable tile of the country-year. Tiles the "
        "uninhabited filter drops get siScore 0 (the bottom of every POG); `raw_score` keeps the "
        "scorer's own output for every tile. Table `siscore_grid`.",
        check_specs=[AssetCheckSpec("scores_in_unit_interval", asset="siscore_grid",
                                    description="every score is finite and in [0, 1], one row per tile")],
    )
    def siscore_grid(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        index, stack = load_year_tiles(settings, warehouse, country.code, year)
        model = scorer_lib.load_scorer(settings.country_dir(country.code) / "models" / "scorer.pt", device=settings.device)
        scores = scorer_lib.score_images(model, np.asarray(stack))
        hab = warehouse.read("habitation", {"country": country.code, "year": year})
        frame = index[["country", "year", "tile_id", "z", "x", "y"]].copy()
        frame["raw_score"] = scores
        frame = frame.merge(hab[["tile_id", "inhabited"]], on="tile_id", how="left")
        # Stage 1's filter is part of the method: uninhabited tiles sit at the bottom, siScore 0.
        inhabited = frame["inhabited"].fillna(False).astype(bool).to_numpy()
        frame["score"] = np.where(inhabited, frame["raw_score"], 0.0)
        scores = frame["score"].to_numpy()
        n = warehouse.write("siscore_grid", frame, {"country": country.code, "year": year})
        ok = bool(np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
                  and not frame["tile_id"].duplicated().any())
        return MaterializeResult(
            metadata={"tiles": n, "mean_score": float(scores.mean()) if n else float("nan"),
                      "inhabited_mean_score": float(scores[inhabited].mean()) if inhabited.any() else float("nan")},
            check_results=[AssetCheckResult(check_name="scores_in_unit_interval", passed=ok,
                                            severity=AssetCheckSeverity.ERROR,
                                            metadata={"min": float(scores.min()) if n else 0.0,
                                                      "max": float(scores.max()) if n else 0.0})],
        )

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"pytorch"},
        deps=[scorer, siscore_grid],
        description="Grad-CAM of the scorer: for the tiles whose siScore changed most between the "
        "first and last year, one row per tile and one column per year, the heatmap of what drove "
        "the score (the first seed's network when the scorer is a seed ensemble). PNG panel.",
    )
    def scorer_gradcam(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        from siscore_assets.core.models import gradcam

        country = country_only(context, settings)
        model = scorer_lib.load_scorer(settings.country_dir(country.code) / "models" / "scorer.pt", device=settings.device)
        net = model.members[0] if isinstance(model, scorer_lib.ScorerEnsemble) else model
        grids = {y: warehouse.read("siscore_grid", {"country": country.code, "year": y}) for y in country.years}
        grids = {y: g.set_index("tile_id") for y, g in grids.items() if not g.empty}
        if len(grids) < 1:
            raise FileNotFoundError(f"no siscore_grid rows for {country.code}: materialise 'siscore_grid' first")
        years = sorted(grids)
        common = sorted(set.intersection(*(set(g.index) for g in grids.values())))
        change = (grids[years[-1]].loc[common, "raw_score"] - grids[years[0]].loc[common, "raw_score"]).abs()
        chosen = list(change.sort_values(ascending=False, kind="stable").index[: country.models.gradcam_tiles])
        tiles_by_year = {}
        for y in years:
            index, stack = load_year_tiles(settings, warehouse, country.code, y)
            row_of = {t: i for i, t in enumerate(index["tile_id"])}
            tiles_by_year[y] = np.asarray(stack)[[row_of[t] for t in chosen]]
        png = gradcam.year_panel(net, tiles_by_year, tile_names=chosen)
        path = settings.country_dir(country.code) / "gradcam" / "panel.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        return MaterializeResult(metadata={
            "tiles": MetadataValue.json(chosen), "years": MetadataValue.json(years),
            "panel": image_md(png, "Grad-CAM: tiles x years"), "file": MetadataValue.path(str(path)),
        })

    return [scorer, siscore_grid, scorer_gradcam]
