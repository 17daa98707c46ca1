"""Scoring (Stage 3): the rank-wise scorer trained on the ensembled POG, and yearly siScore per tile."""

import time

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

from siscore_assets.core import ranking
from siscore_assets.core.analysis import validation as validation_lib
from siscore_assets.core.countries import CountryRegistry
from siscore_assets.core.imagery import sources
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import (
    batch_inference,
    colour_stats,
    gradcam,
    rank_training,
    recipes,
    siscore,
    training_data,
)
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models.common import resize_images
from siscore_assets.core.storage.files import atomic_path

from ..common.context import (
    OWNERS,
    STALE_MODEL,
    country_only,
    country_year,
    learned_version,
    log_rate,
    not_configured,
)
from ..common.data import (
    TILE_TABLE_COLUMNS,
    YEAR_HOLDOUT_SHARE,
    cluster_ids,
    ensemble_tiers,
    labelled_roles,
    required,
    sample_ids,
    tier_ranks,
    tile_year_rows,
    tile_year_sample,
    unlabelled_tile_cap,
    year_holdout,
    year_tiles,
)
from ..common.metadata import frame_md, image_md, line_plot_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "scoring"
#: Read by maps, change tables and validation: blocking, checked before the rows are written.
SCORES_IN_UNIT_INTERVAL = AssetCheckSpec(
    "scores_in_unit_interval",
    asset="siscore_grid",
    blocking=True,
    description="every score is finite and in [0, 1], one row per tile",
)


def recipe_pools(
    country, settings: SiscoreSettings, warehouse: Warehouse, px: int, bottom: int
) -> dict:
    """What the recipe's scorer trains and is checked on: cluster images split (train, validation,
    test), the labelled images split by ``labelled_roles`` (the fit rows' uninhabited images
    are the bottom cluster; the selection rows are only scored; the held-out rows never trained on
    or selected on), and the tile-years of a seeded tile sample grouped by tile id
    (``tile_year_sample``)."""
    m = country.models
    if not country.clusters_from_folder:
        raise ValueError(
            f"{country.code}: recipe '{m.recipe}' needs a cluster folder ('clusters: <folder>')"
        )
    folder = country.resolve(country.clusters)
    pools, _ = tf.read_cluster_folder(folder, px=px)
    train, val, test = training_data.cluster_splits(
        pools, m.holdout_per_cluster, training_data.VAL_PER_CLUSTER, m.seed
    )
    data = np.load(settings.country_dir(country.code) / "pretrain" / "pretrain.npz")
    images, labels = data["images"], data["labels"]
    lab_train, lab_sel, lab_held = labelled_roles(country, labels)
    bottom_imgs = resize_images(images[lab_train][labels[lab_train].argmax(axis=1) == 2], px)
    train = {**train, bottom: bottom_imgs}

    spans: dict[int, tuple[int, list[str]]] = {}  # year -> (first row in the stack, tile ids)

    def years():
        start = 0
        for year, ids, images in tile_year_sample(
            settings,
            warehouse,
            country,
            seed=m.seed,
            max_tiles=unlabelled_tile_cap(px),
            holdout=YEAR_HOLDOUT_SHARE,
        ):
            spans[year] = (start, ids)
            start += len(ids)
            yield ids, resize_images(images, px)

    un, groups = training_data.unlabelled_years(years())
    return {
        "spans": spans,
        "train": train,
        "val": val,
        "test": test,
        "unlabelled": un,
        "groups": groups,
        "folder": str(folder),
        "labelled": (
            resize_images(images[lab_train], px),
            labels[lab_train] @ np.asarray(validation_lib.DEV_INDEX_WEIGHTS),
        ),
        "selection": (
            resize_images(images[lab_sel], px),
            labels[lab_sel] @ np.asarray(validation_lib.DEV_INDEX_WEIGHTS),
        ),
        "held_images": resize_images(images[lab_held], px),
        "held_labels": labels[lab_held],
    }


def cluster_pools(
    country, settings: SiscoreSettings, warehouse: Warehouse
) -> tuple[dict[int, np.ndarray], str]:
    """A non-recipe scorer's training images by cluster (a cluster folder, or a seeded sample of
    each cluster's member tiles read from the tile stores) and where they came from."""
    m = country.models
    if country.clusters_from_folder:
        folder = country.resolve(country.clusters)
        return tf.read_cluster_folder(folder, px=m.input_px)[0], str(folder)
    members = required(warehouse, "cluster_members", {"country": country.code}, asset="clusters")

    def years():
        for year in country.years:
            index, stack = year_tiles(settings, warehouse, country.code, year)
            of_tile = members[members["year"] == year].set_index("tile_id")["cluster_id"]
            yield index["tile_id"].map(of_tile).to_numpy(), stack

    return training_data.pools_from_tiles(years(), seed=m.seed), "cluster_members"


def recipe_scorer(
    country, settings: SiscoreSettings, warehouse: Warehouse, pog, bottom: int
) -> MaterializeResult:
    """The real-imagery scorer: one ResNet-18 per recipe seed, started from the pretrained network."""
    m = country.models
    recipe = recipes.get_recipe(m.recipe)
    recipes.check_store_px(recipe, sources.store_px(country), country.code)
    data = recipe_pools(country, settings, warehouse, recipe.tensor_px, bottom)
    paths = pog.tier_paths(seed=m.seed)
    rank_of = (
        {c: float(i) for i, tier in enumerate(paths[0]) for c in tier} if pog.is_total() else {}
    )
    model_dir = settings.country_dir(country.code) / "models"
    pre = habitation_lib.load_habitation(model_dir / "habitation.pt", device=settings.device)
    members, histories = [], []
    for seed in recipe.seeds:
        model, history = rank_training.train_ranker(
            data["train"],
            paths,
            recipe,
            pretrained=pre,
            unlabelled=data["unlabelled"],
            groups=data["groups"],
            val=data["val"],
            cluster_rank=rank_of,
            labelled=data["labelled"],
            selection=data["selection"],
            seed=int(seed),
            device=settings.device,
        )
        scorer_lib.save_scorer(model, model_dir / f"scorer_seed{seed}.pt")
        members.append(model)
        histories.append(history)
    model = scorer_lib.ScorerEnsemble(members).eval() if len(members) > 1 else members[0]
    path = scorer_lib.save_scorer(model, model_dir / "scorer.pt")
    fit, rho = scorer_lib.cluster_fit(model, data["test"], rank_of)
    curves = {
        f"rank loss seed {sd}": pd.Series([h["rank_loss"] for h in hist])
        .rolling(5, min_periods=1)
        .mean()
        .tolist()
        for sd, hist in zip(recipe.seeds, histories)
    }
    curves["year consistency"] = [h["year_consistency"] for h in histories[0]]
    selected = [rank_training.selected_step(hist) for hist in histories]
    kept = [rank_training.selected_entry(hist) for hist in histories]
    selection = {
        k: [h.get(k) for h in kept]
        for k in ("val_cluster_order", "val_label_order", "val_selection")
    }
    return MaterializeResult(
        metadata={
            "checkpoint": MetadataValue.path(str(path)),
            "recipe": m.recipe,
            "steps": recipe.steps,
            "paths": len(paths),
            "seeds": MetadataValue.json(list(recipe.seeds)),
            "selected_steps": MetadataValue.json(selected),
            "selection_figures": MetadataValue.json(selection),
            "selection_on": f"validation split of the clusters + {recipe.label_selection_share:.0%} of the labelled "
            "non-held-out images (no stage trains on them, pretraining included; never the held-out labels)",
            "training_images": int(sum(len(v) for v in data["train"].values())),
            "image_source": data["folder"],
            "validation_images": int(sum(len(v) for v in data["val"].values())),
            "test_images": int(sum(len(v) for v in data["test"].values())),
            "unlabelled_tile_years": len(data["unlabelled"]),
            "rank_loss": recipe.rank_loss,
            "test_cluster_order_spearman": rho,
            "cluster_order_on": "test split (never used for selection)",
            "loss_curves": line_plot_md(curves, "scorer training"),
            "cluster_mean_scores": frame_md(fit),
        }
    )


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch"},
        deps=["ensemble_pog", "clusters", "cluster_members", p.from_years("patches")],
        code_version=learned_version(
            registry,
            scorer_lib.__name__,
            training_data.__name__,
            rank_training.__name__,
            recipes.__name__,
        ),
        automation_condition=STALE_MODEL,
        description="ResNet-18 scorer (no pretrained weights) trained so that images along every "
        "least->most path of the ensembled POG are ranked in path order: torchsort soft-rank "
        "Spearman loss + linearity loss on cut-mixed images. Checkpoint file; loss curves.",
    )
    def scorer(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        m = country.models
        _, bottom = cluster_ids(warehouse, country.code)
        pog = ranking.Pog.from_tiers(ensemble_tiers(warehouse, country.code)).with_bottom(bottom)
        if m.recipe:
            return recipe_scorer(country, settings, warehouse, pog, bottom)
        pools, origin = cluster_pools(country, settings, warehouse)
        paths = pog.tier_paths(seed=m.seed)
        rank_of = (
            {c: float(i) for i, tier in enumerate(paths[0]) for c in tier} if pog.is_total() else {}
        )
        train_pools, held = pools, None
        if m.holdout_per_cluster and rank_of:
            train_pools, held = training_data.split_holdout(pools, m.holdout_per_cluster, m.seed)
        seeds = list(m.scorer_seeds) or [m.seed]
        model, histories = scorer_lib.train_scorer_ensemble(
            train_pools,
            paths,
            seeds=seeds,
            steps=m.scorer_steps,
            per_tier=m.per_tier,
            lr=m.scorer_lr,
            alpha_linearity=m.alpha_linearity,
            input_px=m.input_px,
            grayscale=m.grayscale,
            normalize=m.normalize,
            sampling=m.sampling,
            holdout=held,
            cluster_rank=rank_of,
            eval_every=m.eval_every,
            device=settings.device,
        )
        model_dir = settings.country_dir(country.code) / "models"
        path = model_dir / "scorer.pt"
        members_nets = (
            list(model.members) if isinstance(model, scorer_lib.ScorerEnsemble) else [model]
        )
        for seed, member in zip(seeds, members_nets):
            scorer_lib.save_scorer(member, model_dir / f"scorer_seed{seed}.pt")
        scorer_lib.save_scorer(model, path)
        # How the scorer orders the clusters: held-out images when some were kept out, else training ones.
        check = held if held else {c: imgs[:64] for c, imgs in train_pools.items()}
        fit, rho = scorer_lib.cluster_fit(model, check, rank_of)
        member_rho = (
            {
                f"seed{sd}": scorer_lib.cluster_order_spearman(mm, check, rank_of)[0]
                for sd, mm in zip(seeds, members_nets)
            }
            if rank_of and len(members_nets) > 1
            else {}
        )
        history = histories[0]
        window = max(1, len(history) // 30)

        def smooth(hist: list[dict], key: str) -> list[float]:
            return pd.Series([h[key] for h in hist]).rolling(window, min_periods=1).mean().tolist()

        curves = {
            "loss": smooth(history, "loss"),
            "rank_loss": smooth(history, "rank_loss"),
            "lin_loss": smooth(history, "lin_loss"),
        }
        for sd, hist in zip(seeds[1:], histories[1:]):
            curves[f"loss seed {sd}"] = smooth(hist, "loss")
        selected = [rank_training.selected_step(hist) for hist in histories]
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(str(path)),
                "steps": len(history),
                "paths": len(paths),
                "seeds": MetadataValue.json(seeds),
                "selected_steps": MetadataValue.json(selected),
                "training_images": int(sum(len(v) for v in train_pools.values())),
                "image_source": origin,
                "heldout_images": int(sum(len(v) for v in held.values())) if held else 0,
                "final_loss": float(np.mean([h["loss"] for h in history[-window:]])),
                "cluster_order_spearman": rho,
                "cluster_order_on": "held-out images" if held else "training images",
                **{f"cluster_order_spearman_{k}": v for k, v in member_rho.items()},
                "loss_curves": line_plot_md(curves, f"scorer training (seed {seeds[0]})"),
                "cluster_mean_scores": frame_md(fit),
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[p.same("patches"), p.same("habitation"), p.from_country(scorer.key)],
        check_specs=[SCORES_IN_UNIT_INTERVAL],
        description="siScore in [0, 1] for every usable tile of the country-year. Tiles the "
        "uninhabited filter drops get siScore 0 (the bottom of every POG); `raw_score` keeps the "
        "scorer's own output for every tile. Table `siscore_grid`; rows that break the check are "
        "not written.",
    )
    def siscore_grid(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        index, stack = year_tiles(
            settings, warehouse, country.code, year, columns=TILE_TABLE_COLUMNS
        )
        model_path = settings.country_dir(country.code) / "models" / "scorer.pt"
        hab = required(warehouse, "habitation", keys, columns="tile_id, inhabited")
        zero = not country.models.recipe or recipes.get_recipe(country.models.recipe).zero_filter
        workers, started = settings.worker_config(), time.perf_counter()
        raw = batch_inference.map_store(
            batch_inference.score_block,
            model_path,  # on the configured workers
            index["stack_path"].iloc[0] if len(index) else "",
            stack,
            settings.device,
            workers,
            empty=np.zeros(0),
            log=context.log.info,
        )
        rate = log_rate(
            context,
            "siscore_grid",
            len(index),
            time.perf_counter() - started,
            workers.describe(len(index)),
        )
        frame = siscore.siscore_table(index, raw, hab, zero_uninhabited=zero)
        problems = siscore.score_problems(frame)
        scores = frame["score"].to_numpy()
        ok = not any(problems.values())
        check = AssetCheckResult(
            check_name="scores_in_unit_interval",
            passed=ok,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                **problems,
                "min": float(np.nanmin(scores)) if len(scores) else 0.0,
                "max": float(np.nanmax(scores)) if len(scores) else 0.0,
            },
        )
        if not ok:  # nothing is written: maps and validation would read broken scores
            return MaterializeResult(
                metadata={"status": "rejected", "rows_written": 0}, check_results=[check]
            )
        n = warehouse.write("siscore_grid", frame, keys)
        inhabited = frame["inhabited"].fillna(False).astype(bool).to_numpy()
        return MaterializeResult(
            metadata={
                "tiles": n,
                "mean_score": float(scores.mean()) if n else float("nan"),
                "inhabited_mean_score": float(scores[inhabited].mean())
                if inhabited.any()
                else float("nan"),
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
        "first and last year, one row per tile and one column per year, the heatmap of what drove "
        "the score (the first seed's network when the scorer is a seed ensemble). PNG panel.",
    )
    def scorer_gradcam(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
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
        ],
        description="Internal validation of a recipe's scorer, on splits never used for training or "
        "checkpoint selection: held-out human labels (Spearman vs the soft development index urban 2 / "
        "rural 1 / uninhabited 0, AUC urban vs rural), the test split's cluster order, year-to-year rank "
        "agreement of the tiles' scores and tiles changing beyond the yearly noise; per seed, their "
        "spread, the seed ensemble (siScore), and the colour/texture feature-ranker baseline. Table "
        "`validation_internal` (country, model, figure, value).",
    )
    def validation_internal(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        if not country.models.recipe:
            return not_configured(
                warehouse,
                country,
                "no recipe: internal validation is for the recipe scorer",
                {"validation_internal": keys},
            )[0]
        recipe = recipes.get_recipe(country.models.recipe)
        _, bottom = cluster_ids(warehouse, country.code)
        data = recipe_pools(country, settings, warehouse, recipe.tensor_px, bottom)
        rank_of = tier_ranks(warehouse, country.code)
        model_dir = settings.country_dir(country.code) / "models"
        grids = {
            y: required(warehouse, "siscore_grid", {"country": country.code, "year": y})
            for y in country.years
        }
        rows = []

        # Tiles no cross-year training term saw: their year agreement is the held-out one.  The
        # grid's scores cover all of them; re-scoring per model reads the images of a bounded sample.
        held_tiles = year_holdout(settings, warehouse, country, seed=country.models.seed)
        held_read = sample_ids(
            held_tiles, unlabelled_tile_cap(recipe.tensor_px), country.models.seed
        )
        held_years = list(tile_year_rows(settings, warehouse, country, set(held_read)))

        def add(name: str, score_fn, years_frame: pd.DataFrame | None = None) -> dict:
            figs = validation_lib.label_agreement(
                score_fn(data["held_images"]), data["held_labels"]
            )
            means = {c: float(score_fn(v).mean()) for c, v in data["test"].items()}
            figs["test_cluster_order"] = validation_lib.cluster_order(means, rank_of)
            if years_frame is None:
                years_frame = pd.DataFrame(
                    {
                        y: pd.Series(score_fn(images), index=ids)
                        for y, g in grids.items()
                        for ids, images in [recipe_tiles(data, g)]
                    }
                )
                held_frame = pd.DataFrame(
                    {
                        y: pd.Series(score_fn(images), index=ids)
                        for y, ids, images in held_years
                        if len(ids)
                    }
                )
            else:
                held_frame = years_frame.loc[years_frame.index.isin(held_tiles)]
            figs.update(validation_lib.year_agreement(years_frame))
            if len(held_frame) >= 3 and held_frame.shape[1] >= 2:
                figs.update(
                    {
                        f"heldout_{k}": v
                        for k, v in validation_lib.year_agreement(held_frame).items()
                    }
                )
            rows.extend(
                {"country": country.code, "model": name, "figure": k, "value": float(v)}
                for k, v in figs.items()
            )
            return figs

        seed_rows = []
        for seed in recipe.seeds:
            member = scorer_lib.load_scorer(
                model_dir / f"scorer_seed{seed}.pt", device=settings.device
            )
            seed_rows.append(
                add(f"seed{seed}", lambda x, mm=member: scorer_lib.score_images(mm, x))
            )
        for k, v in validation_lib.seed_spread(seed_rows).items():
            rows.append({"country": country.code, "model": "seeds", "figure": k, "value": v})
        ensemble = scorer_lib.load_scorer(model_dir / "scorer.pt", device=settings.device)
        wide = {
            col: pd.DataFrame({y: g.set_index("tile_id")[col] for y, g in grids.items()})
            for col in ("raw_score", "score")
        }
        ens = add("siscore", lambda x: scorer_lib.score_images(ensemble, x), wide["score"])
        add("raw_scorer", lambda x: scorer_lib.score_images(ensemble, x), wide["raw_score"])
        # The post-hoc option measured too: the uninhabited filter's tiles (and held-out images) at 0.
        habitation = habitation_lib.load_habitation(
            model_dir / "habitation.pt", device=settings.device
        )

        def zeroed(x: np.ndarray) -> np.ndarray:
            keep = habitation_lib.predict_habitation(habitation, x)[:, 2] < 0.5
            return np.where(keep, scorer_lib.score_images(ensemble, x), 0.0)

        inhabited = pd.DataFrame(
            {
                y: g.set_index("tile_id")["inhabited"].fillna(False).astype(bool)
                for y, g in grids.items()
            }
        )
        add("zero_filter", zeroed, wide["raw_score"].where(inhabited, 0.0))
        ranker = colour_stats.load_feature_ranker(
            model_dir / "feature_ranker.json"
        )  # fitted on data["train"]
        feat = add("feature_ranker", ranker.score)
        table = pd.DataFrame(rows)
        n = warehouse.write("validation_internal", table, keys)
        shown = table.pivot_table(
            index="figure", columns="model", values="value", sort=False
        ).reset_index()
        return MaterializeResult(
            metadata={
                "rows": n,
                "status": "ok",
                "figures": frame_md(shown.round(3)),
                **{f"siscore_{k}": float(v) for k, v in ens.items()},
                **{
                    f"feature_ranker_{k}": float(v)
                    for k, v in feat.items()
                    if k in ("test_cluster_order", "year_rho_min")
                },
            }
        )

    return [scorer, siscore_grid, scorer_gradcam, validation_internal]


def recipe_tiles(data: dict, grid: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The tile ids of ``grid``'s tile-year rows that the unlabelled sample holds (in the grid's
    order) and their images: per-seed year agreement is measured on that sample."""
    start, ids = data["spans"][int(grid["year"].iloc[0])]
    row = {t: start + i for i, t in enumerate(ids)}
    held = [t for t in grid["tile_id"] if t in row]
    return held, data["unlabelled"][[row[t] for t in held]]
