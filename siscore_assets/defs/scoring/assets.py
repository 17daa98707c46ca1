"""Scoring (Stage 3): the scorer trained on the ensembled POG, yearly siScore per tile, its
Grad-CAM panel and its internal validation."""

import time

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    StaticPartitionMapping,
    asset,
)

from siscore_assets.core import model_settings, ranking
from siscore_assets.core.countries import CountryRegistry
from siscore_assets.core.imagery import sources
from siscore_assets.core.models import (
    colour_stats,
    common,
    evaluation,
    gradcam,
    pretraining,
    scorer_training,
    splits,
    training_data,
    transfer,
)
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.storage.files import atomic_path

from ..common.context import (
    OWNERS,
    STALE_MODEL,
    country_only,
    country_year,
    imagery_not_configured,
    imagery_skipped,
    learned_version,
    log_rate,
    not_configured,
)
from ..common.data import (
    cluster_ids,
    ensemble_tiers,
    required,
    save_year_holdout,
    tier_ranks,
    tile_year_rows,
    trained_year_holdout,
    training_set,
    unlabelled_tile_cap,
    year_store,
    year_tiles,
)
from ..common.metadata import frame_md, image_md, line_plot_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse
from ..common.start_from import habitation_dep
from ..common.tile_rows import require_habitation, year_order
from .grid import (
    spool_grid,
    unit_interval_result,
    year_scores,
    year_transform,
)
from .score_file import score_file_grid
from .start_scorer import scorer_members

GROUP = "scoring"
#: Read by maps, change tables and validation: blocking, checked before the rows are written.
SCORES_IN_UNIT_INTERVAL = AssetCheckSpec(
    "scores_in_unit_interval",
    asset="siscore_grid",
    blocking=True,
    description="every score is finite and in [0, 1], one row per tile",
)


def training_report(histories: list[list[dict]], seeds: list[int]) -> dict:
    """The scorer's training curves (smoothed) and the kept checkpoints' selection figures."""
    window = max(1, len(histories[0]) // 30)

    def smooth(hist: list[dict], key: str) -> list[float]:
        return pd.Series([h[key] for h in hist]).rolling(window, min_periods=1).mean().tolist()

    curves = {f"rank loss seed {sd}": smooth(h, "rank_loss") for sd, h in zip(seeds, histories)}
    for key in ("lin_loss", "year_consistency", "label_order"):
        if any(h[key] for h in histories[0]):
            curves[key.replace("_", " ")] = smooth(histories[0], key)
    kept = [scorer_training.selected_entry(h) for h in histories]
    figures = ("val_cluster_order", "val_label_order", "val_selection")
    return {
        "steps": len(histories[0]),
        "seeds": MetadataValue.json(seeds),
        "selected_steps": MetadataValue.json([scorer_training.selected_step(h) for h in histories]),
        "selection_figures": MetadataValue.json({k: [h.get(k) for h in kept] for k in figures}),
        "final_loss": float(np.mean([h["loss"] for h in histories[0][-window:]])),
        "loss_curves": line_plot_md(curves, "scorer training"),
    }


def selection_on(m: model_settings.ModelSettings, data: training_data.TrainingSet) -> str:
    """What the kept checkpoints were chosen on, in words (none of it is trained on)."""
    if not (m.eval_every and data.val):
        return "nothing: the last step is kept"
    labels = data.selection is not None and len(data.selection[0]) >= 3
    extra = (
        f" + {m.label_selection_share:.0%} of the labelled non-held-out images" if labels else ""
    )
    return f"validation split of the clusters ({m.val_per_cluster} a cluster){extra}"


def every_year(p: Partitions, asset_name: str) -> AssetDep:
    """A yearly asset reading every year of its country's yearly ``asset_name`` (the common
    radiometry and the per-place filter are fitted on all of them)."""
    keys = {c: p.year_keys(c) for c in p.years_of}
    return AssetDep(
        asset_name,
        partition_mapping=StaticPartitionMapping({k: keys[c] for c in p.years_of for k in keys[c]}),
    )


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch"},
        deps=[
            "ensemble_pog",
            "clusters",
            "cluster_members",
            "pretrain_set",
            habitation_dep(registry),  # its own country's, and a `start_from` source's
            p.from_years("patches"),
        ],
        code_version=learned_version(
            registry,
            scorer_lib.__name__,
            scorer_training.__name__,
            training_data.__name__,
            splits.__name__,
            model_settings.__name__,
            transfer.__name__,
            colour_stats.__name__,  # the statistics branch's inputs
            common.__name__,  # tensors, augmentation
            pretraining.__name__,  # the scene augmentation
            habitation_lib.__name__,  # the trunk it starts from
        ),
        automation_condition=STALE_MODEL,
        description="ResNet-18 scorer (no downloaded weights; the Stage-1 network's trunk when "
        "`from_pretrained`) trained so that images along every least->most path of the "
        "ensembled POG are ranked in path order (pairwise-sigmoid or torchsort soft-rank loss; "
        "optional linearity, label-order and year-consistency terms), one network per seed, "
        "checkpoints chosen on validation clusters and selection images. Checkpoint files; "
        "loss curves; the test split's cluster order. With `start_from` (docs/new-country.md): "
        "`init` starts each seed from the named country's scorer trunk, `as_is` takes its "
        "scorer unchanged (zero-shot); the source's files are recorded by SHA-256.",
    )
    def scorer(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        m = country.models
        model_settings.check_store_px(m, sources.store_px(country), country.code)
        _, bottom = cluster_ids(warehouse, country.code)
        pog = ranking.Pog.from_tiers(ensemble_tiers(warehouse, country.code)).with_bottom(bottom)
        paths = pog.tier_paths(seed=m.seed)
        rank_of = ranking.tier_ranks(paths[0]) if pog.is_total() else {}
        data = training_set(settings, warehouse, country, with_years=m.year_consistency > 0)
        model_dir = settings.country_dir(country.code) / "models"
        # trained here, or started from / taken as it is from another country (`start_from`)
        members, histories, lineage = scorer_members(
            settings, country, data.inputs(paths, rank_of), model_dir
        )
        model = scorer_lib.ensemble(members)
        path = scorer_lib.save_scorer(model, model_dir / "scorer.pt")
        save_year_holdout(settings, warehouse, country)  # what validation's year agreement reads
        # How the scorer orders the clusters: the test split when there is one, else training.
        check = data.test or {c: imgs[:64] for c, imgs in data.train.items()}
        fit, rho = evaluation.scorer_cluster_fit(model, check, rank_of)
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(str(path)),
                "recipe": m.recipe,
                "rank_loss": m.rank_loss,
                "paths": len(paths),
                "selection_on": selection_on(m, data) if histories else "not trained here",
                **(training_report(histories, list(m.scorer_seeds)) if histories else {"steps": 0}),
                **lineage,
                "image_source": data.origin,
                **data.counts(),
                "cluster_order_spearman": rho,
                "cluster_order_on": "test split (never trained on nor used for selection)"
                if data.test
                else "training images",
                "cluster_mean_scores": frame_md(fit),
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[every_year(p, "patches"), every_year(p, "habitation"), p.from_country(scorer.key)],
        check_specs=[SCORES_IN_UNIT_INTERVAL],
        description="siScore in [0, 1] for every usable tile of the country-year, each year's "
        "tiles first brought to the country's common radiometry (`radiometry: relative`, "
        "docs/change.md). Places the uninhabited filter drops in every year get siScore 0 (the "
        "bottom of every POG) unless the settings keep continuous scores (`zero_filter: "
        "false`); `raw_score` keeps the scorer's own output for every tile, `inhabited` the "
        "filter's verdict of the year. A tile's score is averaged over its image's dihedral "
        "views when the scorer says so (`score_views`). Recipes with colour statistics (`cpu`) "
        "score from the "
        "scorer parts stored beside the tile store (computed once per tile-year, reused when "
        "the scorer is retrained); band means for the radiometric fit are stored there too. "
        "Table `siscore_grid`, joined on tile keys and spooled batch by batch; rows that break "
        "the check are not written.",
    )
    def siscore_grid(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        if country.analysis_only:  # scores made elsewhere: the score file's rows of the year
            return score_file_grid(warehouse, country, year)
        keys, log = {"country": country.code, "year": year}, context.log.info
        store_path, stack = year_store(settings, warehouse, country.code, year)
        require_habitation(warehouse, country.code, year)
        order = year_order(warehouse, country.code, year)  # the tiles the scores belong to
        workers, started = settings.worker_config(), time.perf_counter()
        fix = year_transform(settings, warehouse, country, year, workers, log)
        raw, read_from, scorer = year_scores(
            settings.country_dir(country.code) / "models" / "scorer.pt",
            store_path,
            stack,
            settings.device,
            fix,
            workers,
            log,
        )
        seconds = time.perf_counter() - started
        rate = log_rate(context, "siscore_grid", len(raw), seconds, workers.describe(len(raw)))
        with warehouse.spool("siscore_grid", keys) as rows:
            summary = spool_grid(
                warehouse, rows, country, year, raw, country.models.zero_filter, order, scorer
            )
            check = unit_interval_result(summary)
            if not check.passed:  # nothing is written: maps and validation would read broken scores
                return MaterializeResult(
                    metadata={"status": "rejected", "rows_written": 0}, check_results=[check]
                )
            n = rows.commit()
        return MaterializeResult(
            metadata={
                "tiles": n,
                "mean_score": float(summary["mean_score"]) if n else float("nan"),
                "inhabited_mean_score": float(summary["inhabited_mean_score"])
                if summary["inhabited_mean_score"] is not None
                else float("nan"),
                "radiometry": MetadataValue.json(fix.as_dict() if fix else "none"),
                "scored_from": read_from,
                "scorer": scorer,
                **rate,
            },
            check_results=[check],
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch"},
        deps=[scorer, p.from_years(siscore_grid.key), p.from_years("patches")],
        description="Grad-CAM of the scorer: for the tiles whose siScore changed most between the "
        "first and last year, one row per tile and one column per year, the heatmap of what "
        "drove the score (the first seed's network when the scorer is a seed ensemble). PNG.",
    )
    def scorer_gradcam(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        if country.models.gradcam_tiles == 0:
            return MaterializeResult(metadata={"status": "not configured (gradcam_tiles: 0)"})
        model = scorer_lib.load_scorer(
            settings.country_dir(country.code) / "models" / "scorer.pt", device=settings.device
        )
        net = model.members[0] if isinstance(model, scorer_lib.ScorerEnsemble) else model
        grids = {
            y: warehouse.read("siscore_grid", {"country": country.code, "year": y})
            for y in country.years
        }
        grids = {y: g for y, g in grids.items() if not g.empty}
        if not grids:
            raise FileNotFoundError(
                f"no siscore_grid for {country.code}: materialise 'siscore_grid' first"
            )
        chosen = gradcam.largest_change_tiles(grids, country.models.gradcam_tiles)
        tiles_by_year = {}
        for y in sorted(grids):  # only the chosen rows are read from the tile stores
            index, stack = year_tiles(
                settings, warehouse, country.code, y, columns="tile_id, image_row, stack_path"
            )
            row_of = {t: i for i, t in enumerate(index["tile_id"])}
            tiles_by_year[y] = np.asarray(stack[[row_of[t] for t in chosen]])
        png = gradcam.year_panel(net, tiles_by_year, tile_names=chosen)
        path = settings.country_dir(country.code) / "gradcam" / "panel.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        return MaterializeResult(
            metadata={
                "tiles": MetadataValue.json(chosen),
                "years": MetadataValue.json(sorted(grids)),
                "panel": image_md(png, "Grad-CAM: tiles x years"),
                "file": MetadataValue.path(str(path)),
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[
            scorer,
            p.from_years(siscore_grid.key),
            p.from_years("patches"),
            "pretrain_set",
            "feature_ranker",
            # the training set, the tier ranks and the habitation network it re-reads
            "clusters",
            "cluster_members",
            "ensemble_pog",
            "habitation_model",
        ],
        description="Internal validation of the scorer on what no stage trained or selected on: "
        "held-out human labels (Spearman vs the soft development index urban 2 / rural 1 / "
        "uninhabited 0, AUC urban vs rural), the test split's cluster order, year-to-year "
        "agreement of the tiles' scores and tiles changing beyond the yearly noise; per seed, "
        "their spread, the seed ensemble (siScore), and the colour/texture feature-ranker "
        "baseline. Needs held-out labels and a test split (`habitation_holdout`, "
        "`holdout_per_cluster`). Table `validation_internal` (country, model, figure, value).",
    )
    def validation_internal(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        m, keys, log = country.models, {"country": country.code}, context.log.info
        if done := imagery_not_configured(warehouse, country, {"validation_internal": keys}):
            return done[0]
        if not m.validates_internally:
            why = "no held-out labels or test split (habitation_holdout, holdout_per_cluster)"
            return not_configured(warehouse, country, why, {"validation_internal": keys})[0]
        data = training_set(settings, warehouse, country, with_years=True)
        model_dir = settings.country_dir(country.code) / "models"
        # Tiles no cross-year training term saw: their year agreement is the held-out one.  The
        # grid's scores cover all of them; re-scoring a model reads a bounded sample's images.
        held_tiles = trained_year_holdout(settings, warehouse, country)
        held_read = splits.sample_ids(held_tiles, unlabelled_tile_cap(m.tensor_px), m.seed)
        years = evaluation.YearScores(
            grids={
                y: required(warehouse, "siscore_grid", {"country": country.code, "year": y})
                for y in country.years
            },
            held_tiles=held_tiles,
            held_years=list(tile_year_rows(settings, warehouse, country, set(held_read))),
            transforms={
                y: year_transform(settings, warehouse, country, y, settings.worker_config(), log)
                for y in country.years
            },
        )

        def load(name: str):
            return scorer_lib.load_scorer(model_dir / name, device=settings.device)

        result = evaluation.internal_validation(
            country.code,
            data,
            tier_ranks(warehouse, country.code),
            years,
            members=[(sd, load(f"scorer_seed{sd}.pt")) for sd in m.scorer_seeds],
            ensemble=load("scorer.pt"),
            habitation=habitation_lib.load_habitation(
                model_dir / "habitation.pt", device=settings.device
            ),
            feature_ranker=colour_stats.load_feature_ranker(
                model_dir / "feature_ranker.json"
            ).score,
        )
        n = warehouse.write("validation_internal", result.table, keys)
        shown = result.table.pivot_table(
            index="figure", columns="model", values="value", sort=False
        )
        headline = ("test_cluster_order", "year_rho_min")
        return MaterializeResult(
            metadata={
                "rows": n,
                "status": "ok",
                "figures": frame_md(shown.reset_index().round(3)),
                **{f"siscore_{k}": float(v) for k, v in result.siscore.items()},
                **{f"feature_ranker_{k}": float(result.feature_ranker[k]) for k in headline},
            }
        )

    return [scorer, siscore_grid, scorer_gradcam, validation_internal]
