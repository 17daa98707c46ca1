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
from siscore_assets.core.models import scorer as scorer_lib

from ..common import OWNERS, country_only, country_year, frame_md, line_plot_md
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
        members = warehouse.read("cluster_members", {"country": country.code})
        rng = np.random.default_rng(m.seed)
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
        paths = pog.tier_paths(seed=m.seed)
        model, history = scorer_lib.train_scorer(
            pools, paths, steps=m.scorer_steps, per_tier=m.per_tier, alpha_linearity=m.alpha_linearity,
            seed=m.seed, input_px=m.input_px, grayscale=m.grayscale, device=settings.device,
        )
        path = settings.country_dir(country.code) / "models" / "scorer.pt"
        scorer_lib.save_scorer(model, path)
        # How well the trained scorer orders the clusters it was taught (training images).
        rank_of = {c: i for i, tier in enumerate(pog.tier_paths(max_paths=1)[0]) for c in tier} if pog.is_total() else {}
        rows = []
        for c, imgs in sorted(pools.items()):
            s = scorer_lib.score_images(model, imgs[:64])
            rows.append({"cluster_id": c, "images": len(imgs), "mean_score": float(s.mean()),
                         "tier_rank": rank_of.get(c, np.nan)})
        fit = pd.DataFrame(rows)
        rho = float(spearmanr(fit["mean_score"], fit["tier_rank"], nan_policy="omit").statistic) if rank_of else float("nan")
        window = max(1, len(history) // 30)
        smooth = lambda key: pd.Series([h[key] for h in history]).rolling(window, min_periods=1).mean().tolist()  # noqa: E731
        return MaterializeResult(metadata={
            "checkpoint": MetadataValue.path(str(path)), "steps": len(history), "paths": len(paths),
            "final_loss": float(np.mean([h["loss"] for h in history[-window:]])),
            "cluster_order_spearman": rho,
            "loss_curves": line_plot_md({"loss": smooth("loss"), "rank_loss": smooth("rank_loss"),
                                         "lin_loss": smooth("lin_loss")}, "scorer training"),
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

    return [scorer, siscore_grid]
