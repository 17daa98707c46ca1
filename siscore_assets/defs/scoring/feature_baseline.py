"""The cheap colour / texture feature-ranker baseline beside siScore: a ridge regression of a
tile's statistics on its cluster's tier of the ensembled POG (the uninhabited cluster at the
bottom), fitted on the scorer's own training images and scored for every usable tile, so the
validation tables show siScore side by side with it (model `feature_ranker`).  Beside it, seed
004's hyperlocal score (model `ordinal_regression`): a linear score on the same statistics fitted
by ordinal regression with linear thresholds to the urban / rural / uninhabited soft labels only
(`core/analysis/ordinal.py`), saved in the same file format and scored the same way."""

import time

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core import model_settings
from siscore_assets.core.analysis import ordinal
from siscore_assets.core.countries import CountryRegistry
from siscore_assets.core.models import batch_inference, colour_stats, splits, training_data

from ..common import tile_rows
from ..common.context import (
    OWNERS,
    STALE_MODEL,
    country_only,
    country_year,
    imagery_not_configured,
    imagery_skipped,
    learned_version,
    log_rate,
)
from ..common.data import (
    cluster_ids,
    labelled_groups,
    labelled_images,
    labelled_roles,
    tier_ranks,
    training_set,
    year_store,
)
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "scoring"
FILE_NAME = "feature_ranker.json"
ORDINAL_FILE = "ordinal_ranker.json"


def ranker_path(settings: SiscoreSettings, code: str, name: str = FILE_NAME):
    return settings.country_dir(code) / "models" / name


def _score_year(context, settings, warehouse, name: str, table: str, ranker: str):
    """Score every usable tile of the partition's country-year with a saved ranker file and write
    ``table``; the ranker not yet fitted is a clear error naming the asset."""
    country, year = country_year(context, settings)
    keys = {"country": country.code, "year": year}
    if done := imagery_not_configured(warehouse, country, {table: keys}):
        return done[0]
    path = ranker_path(settings, country.code, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: materialise '{ranker}' for {country.code} first")
    store_path, stack = year_store(settings, warehouse, country.code, year)
    order = tile_rows.year_order(warehouse, country.code, year)
    workers, started = settings.worker_config(), time.perf_counter()
    if store_path:  # once per tile-year for both baselines and the cpu recipe's scorer parts
        batch_inference.ensure_feature_stats(str(path), store_path, workers, context.log.info)
    scores = batch_inference.map_store(
        batch_inference.feature_block,
        path,
        store_path,
        stack,
        settings.device,
        workers,
        empty=np.zeros(0),
        log=context.log.info,
    )
    rate = log_rate(
        context, table, len(scores), time.perf_counter() - started, workers.describe(len(scores))
    )
    n = tile_rows.write_year_table(
        warehouse, table, country.code, year, order, len(scores),
        lambda rows: {"score": scores[rows]},
    )  # fmt: skip
    return MaterializeResult(
        metadata={"tiles": n, "mean_score": float(scores.mean()) if n else float("nan"), **rate}
    )


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
        code_version=learned_version(
            registry,
            colour_stats.__name__,
            training_data.__name__,
            splits.__name__,
            model_settings.__name__,
        ),
        automation_condition=STALE_MODEL,
        description="The feature-ranker baseline: ridge regression of colour / texture statistics "
        "(RGB quantiles, band shares, saturation, edge density; fine texture when the scorer "
        "reads it) on the cluster's tier in the ensembled POG, uninhabited cluster at the bottom, "
        "fitted on the scorer's training split only. JSON model file; coefficients.",
    )
    def feature_ranker(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        m = country.models
        _, bottom = cluster_ids(warehouse, country.code)
        rank_of = tier_ranks(warehouse, country.code)
        # the scorer's training split: its validation and test images stay unseen
        data = training_set(settings, warehouse, country, with_years=False)
        pools, origin = data.train, f"{data.origin} (the scorer's training split)"
        px, texture_px = m.input_px, m.texture_px if m.colour_stats else 0
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
        "validation tables list it as model `feature_ranker` beside the NL- and LC-guided "
        "baselines.",
    )
    def feature_baseline(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        return _score_year(
            context, settings, warehouse, FILE_NAME, "feature_baseline", "feature_ranker"
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"scipy"},
        deps=["pretrain_set"],
        code_version=learned_version(
            registry, colour_stats.__name__, ordinal.__name__, training_data.__name__
        ),
        automation_condition=STALE_MODEL,
        description="Seed 004's hyperlocal score as a baseline: ordinal regression with linear "
        "thresholds (logits [t1 - f, min(f - t1, t2 - f), f - t2], t1 = 0, t2 = 10, f clamped to "
        "[-10, 20]) of the feature ranker's colour / texture statistics on the urban / rural / "
        "uninhabited soft labels of the labelled images' fit rows (held-out rows unseen). "
        "JSON model file in the feature ranker's format.",
    )
    def ordinal_ranker(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        m = country.models
        images, labels = labelled_images(settings, country.code)
        fit_rows = labelled_roles(country, labels, labelled_groups(settings, country.code))[0]
        px, texture_px = m.input_px, m.texture_px if m.colour_stats else 0
        x = colour_stats.image_stats(images[fit_rows], px, texture_px=texture_px)
        mean, std = x.mean(0), np.clip(x.std(0), 1e-9, None)
        fit = ordinal.fit_ordinal((x - mean) / std, labels[fit_rows])
        ranker = colour_stats.FeatureRanker(
            fit.coef, fit.intercept, mean, std, fit.low, fit.high, px, texture_px
        )
        path = ranker_path(settings, country.code, ORDINAL_FILE)
        colour_stats.save_feature_ranker(ranker, path)
        return MaterializeResult(
            metadata={
                "file": MetadataValue.path(str(path)),
                "training_images": len(x),
                "loss": fit.loss,
                "thresholds": f"{ordinal.T1}, {ordinal.T2}",
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        deps=[p.same("patches"), p.from_country(ordinal_ranker.key)],
        description="The ordinal-regression baseline's score in [0, 1] for every usable tile of "
        "the country-year. Table `ordinal_baseline`; the validation tables list it as model "
        "`ordinal_regression` beside the feature ranker.",
    )
    def ordinal_baseline(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        return _score_year(
            context, settings, warehouse, ORDINAL_FILE, "ordinal_baseline", "ordinal_ranker"
        )

    return [feature_ranker, feature_baseline, ordinal_ranker, ordinal_baseline]
