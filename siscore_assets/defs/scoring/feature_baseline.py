"""The cheap colour / texture feature-ranker baseline beside siScore: a ridge regression of a
tile's statistics on its cluster's tier of the ensembled POG (the uninhabited cluster at the
bottom), fitted on the scorer's own training images and scored for every usable tile, so the
validation tables show siScore side by side with it (model `feature_ranker`)."""

import time

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core.countries import CountryRegistry
from siscore_assets.core.models import batch_inference, colour_stats, recipes, training_data

from ..common.context import (
    OWNERS,
    STALE_MODEL,
    country_only,
    country_year,
    learned_version,
    log_rate,
)
from ..common.data import TILE_TABLE_COLUMNS, cluster_ids, tier_ranks, year_tiles
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse
from .assets import cluster_pools, recipe_pools

GROUP = "scoring"
FILE_NAME = "feature_ranker.json"


def ranker_path(settings: SiscoreSettings, code: str):
    return settings.country_dir(code) / "models" / FILE_NAME


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"scikitlearn"},
        deps=[
            "ensemble_pog",
            "clusters",
            "cluster_members",
            p.from_years("patches"),
            "pretrain_set",
        ],
        code_version=learned_version(registry, colour_stats.__name__, training_data.__name__),
        automation_condition=STALE_MODEL,
        description="The feature-ranker baseline: ridge regression of colour / texture statistics "
        "(RGB quantiles, band shares, saturation, edge density; fine texture with a recipe) on the "
        "cluster's tier in the ensembled POG, uninhabited cluster at the bottom, fitted on the "
        "scorer's training images only (a recipe's training split). JSON model file; coefficients.",
    )
    def feature_ranker(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        m = country.models
        _, bottom = cluster_ids(warehouse, country.code)
        rank_of = tier_ranks(warehouse, country.code)
        if (
            m.recipe
        ):  # the recipe scorer's training split: its validation and test images stay unseen
            recipe = recipes.get_recipe(m.recipe)
            pools = recipe_pools(country, settings, warehouse, recipe.tensor_px, bottom)["train"]
            px, texture_px, origin = recipe.input_px, recipe.texture_px, "recipe training split"
        else:  # the scorer's pools, less the images it holds out
            pools, origin = cluster_pools(country, settings, warehouse)
            if m.holdout_per_cluster and rank_of:
                pools, _ = training_data.split_holdout(pools, m.holdout_per_cluster, m.seed)
            px, texture_px = m.input_px, 0
        ranker = colour_stats.fit_feature_ranker(
            pools, {**rank_of, bottom: -1.0}, px=px, texture_px=texture_px
        )
        path = ranker_path(settings, country.code)
        colour_stats.save_feature_ranker(ranker, path)
        coef = pd.DataFrame(
            {"feature": colour_stats.stat_names(texture_px), "coefficient": ranker.coef}
        )
        coef = coef.reindex(coef["coefficient"].abs().sort_values(ascending=False).index).head(12)
        return MaterializeResult(
            metadata={
                "file": MetadataValue.path(str(path)),
                "image_source": origin,
                "px": px,
                "texture_px": texture_px,
                "training_images": int(
                    sum(len(v) for c, v in pools.items() if c in rank_of or c == bottom)
                ),
                "clusters": int(sum(1 for c in pools if c in rank_of or c == bottom)),
                "largest_coefficients": frame_md(coef.round(4)),
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        deps=[p.same("patches"), p.from_country(feature_ranker.key)],
        description="The feature-ranker baseline's score in [0, 1] for every usable tile of the "
        "country-year, read from the tile store block by block. Table `feature_baseline`; the "
        "validation tables list it as model `feature_ranker` beside the NL- and LC-guided baselines.",
    )
    def feature_baseline(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        path = ranker_path(settings, country.code)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: materialise 'feature_ranker' for {country.code} first"
            )
        index, stack = year_tiles(
            settings, warehouse, country.code, year, columns=TILE_TABLE_COLUMNS
        )
        workers, started = settings.worker_config(), time.perf_counter()
        scores = batch_inference.map_store(
            batch_inference.feature_block,
            path,
            index["stack_path"].iloc[0] if len(index) else "",
            stack,
            settings.device,
            workers,
            empty=np.zeros(0),
            log=context.log.info,
        )
        rate = log_rate(
            context,
            "feature_baseline",
            len(index),
            time.perf_counter() - started,
            workers.describe(len(index)),
        )
        frame = index[["country", "year", "tile_id", "z", "x", "y"]].copy()
        frame["score"] = scores
        n = warehouse.write("feature_baseline", frame, keys)
        return MaterializeResult(
            metadata={"tiles": n, "mean_score": float(scores.mean()) if n else float("nan"), **rate}
        )

    return [feature_ranker, feature_baseline]
