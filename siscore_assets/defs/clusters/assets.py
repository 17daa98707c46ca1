"""Clusters (Stage 1): pretraining and the uninhabited filter, then clusters of similar tiles."""

import pickle
import time

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from siscore_assets.core.countries import (
    CLUSTERS_DEEPCLUSTER,
    GENERATED,
    CountryConfigError,
    CountryRegistry,
)
from siscore_assets.core.imagery import preview, sources
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import (
    batch_inference,
    clustering,
    deepcluster,
    folder_clusters,
    pretraining,
    recipes,
    training_data,
)
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models.common import resize_images
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.files import atomic_path

from ..common.context import (
    OWNERS,
    country_only,
    country_year,
    learned_version,
    log_problems,
    log_rate,
)
from ..common.data import (
    TILE_TABLE_COLUMNS,
    YEAR_HOLDOUT_SHARE,
    labelled_roles,
    required,
    tile_year_sample,
    year_tiles,
)
from ..common.metadata import frame_md, image_md, line_plot_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "clusters"
CLASSES = ("urban", "rural", "uninhabited")
VAL_PER_CLUSTER = training_data.VAL_PER_CLUSTER


def pretrain_px(m) -> int:
    """The pretraining images' size: the recipe's (at least the scorer's, whose bottom cluster and
    held-out label check read the same images at its tensor size: never upsampled), else the small CNN's setting."""
    if not m.recipe:
        return m.habitation_input_px
    recipe = recipes.get_recipe(m.recipe)
    return max(recipe.pretrain_px, recipe.tensor_px)


def unlabelled_images(
    country, settings: SiscoreSettings, warehouse: Warehouse, px: int
) -> tuple[np.ndarray, np.ndarray]:
    """The mean teacher's unlabelled images: every tile-year of a seeded sample of tiles (grouped by
    tile id: the same place in another year; ``tile_year_sample``, less the tiles held out for
    validation's year agreement) and, for a cluster folder, the training split of its images (never its test split)."""
    un, groups = training_data.unlabelled_years(
        (ids, resize_images(images, px))
        for _, ids, images in tile_year_sample(
            settings, warehouse, country, seed=country.models.seed, holdout=YEAR_HOLDOUT_SHARE
        )
    )
    if country.clusters_from_folder:
        by_cluster, _ = tf.read_cluster_folder(country.resolve(country.clusters), px=px)
        train, val, _ = training_data.cluster_splits(
            by_cluster, country.models.holdout_per_cluster, VAL_PER_CLUSTER, country.models.seed
        )
        extra = [v for part in (train, val) for _, v in sorted(part.items())]
        if extra:
            more = np.concatenate(extra)
            un = np.concatenate([un, more]) if len(un) else more
            groups = np.concatenate(
                [groups, np.asarray([f"folder_{i}" for i in range(len(more))], dtype=object)]
            )
    return un, groups


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"numpy"},
        description="Soft-labelled pretraining images (urban / rural / uninhabited shares of four "
        "votes) for the encoder and the uninhabited filter.",
    )
    def pretrain_set(
        context: AssetExecutionContext, settings: SiscoreSettings
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if country.pretrain != GENERATED:
            # A labelled folder (the NK sample's images), kept at the classifier's input size.
            images, labels, _ = tf.read_pretrain_folder(
                country.resolve(country.pretrain), px=pretrain_px(country.models)
            )
        elif not country.is_synthetic:
            raise CountryConfigError(
                f"country {country.code}: 'pretrain: generated' needs a synthetic source; "
                "point 'pretrain' at a folder with images/ and labels.csv"
            )
        else:
            images, labels = sources.synthetic_country(country).pretrain_set(
                sources.pretrain_images(country), seed=country.models.seed
            )
        path = settings.country_dir(country.code) / "pretrain" / "pretrain.npz"
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, images=images, labels=labels)
        majority = pd.Series(np.asarray(CLASSES)[labels.argmax(axis=1)]).value_counts()
        return MaterializeResult(
            metadata={
                "images": len(images),
                "file": MetadataValue.path(str(path)),
                **{f"majority_{k}": int(v) for k, v in majority.items()},
                "sample": image_md(
                    png_bytes(preview.contact_sheet(images[:32])), "pretraining sample"
                ),
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[pretrain_set, p.from_years("patches")],
        kinds={"pytorch"},
        code_version=learned_version(
            registry, habitation_lib.__name__, pretraining.__name__, recipes.__name__
        ),
        description="Soft-label CNN on the pretraining set: the uninhabited filter and the encoder whose "
        "features are clustered. With a recipe (real imagery): a ResNet-18 with a mean-teacher consistency "
        "loss on the unlabelled tiles (every year of the country's tiles, the cluster folder's training "
        "images), which also initialises the scorer.",
    )
    def habitation_model(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        data = np.load(settings.country_dir(country.code) / "pretrain" / "pretrain.npz")
        m = country.models
        images, labels = data["images"], data["labels"]
        # the scorer's selection rows stay out of pretraining too, so selection never sees trained-on images
        train_idx, sel_idx, held_idx = labelled_roles(country, labels)
        extra: dict = {}
        if m.recipe:
            recipe = recipes.get_recipe(m.recipe)
            extra["selection_images"] = len(sel_idx)
            un, groups = unlabelled_images(country, settings, warehouse, recipe.pretrain_px)
            model, history = pretraining.train_pretrained(
                images[train_idx],
                labels[train_idx],
                recipe,
                unlabelled=un,
                groups=groups,
                seed=m.seed,
                device=settings.device,
            )
            extra.update(
                {
                    "recipe": m.recipe,
                    "unlabelled_images": len(un),
                    "arch": "resnet18",
                    "final_consistency": float(history[-1]["consistency"]),
                }
            )
        else:
            model, history = habitation_lib.train_habitation(
                images[train_idx],
                labels[train_idx],
                epochs=m.habitation_epochs,
                seed=m.seed,
                input_px=m.habitation_input_px,
                device=settings.device,
                normalize=m.normalize,
            )
        path = settings.country_dir(country.code) / "models" / "habitation.pt"
        habitation_lib.save_habitation(model, path)
        held = (
            habitation_lib.evaluate_habitation(model, images[held_idx], labels[held_idx])
            if len(held_idx)
            else {}
        )
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(str(path)),
                "train_images": len(train_idx),
                "heldout_images": len(held_idx),
                **{f"heldout_{k}": v for k, v in held.items()},
                "epochs": len(history),
                "final_loss": float(history[-1]["loss"]),
                "final_accuracy": float(history[-1]["accuracy"]),
                **extra,
                "training": line_plot_md(
                    {
                        "loss": [h["loss"] for h in history],
                        "accuracy": [h["accuracy"] for h in history],
                    },
                    "habitation training",
                    "epoch",
                ),
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[p.same("patches"), p.from_country(habitation_model.key)],
        description="Urban / rural / uninhabited probabilities per usable tile; a tile is inhabited "
        "when P(uninhabited) < 0.5. Table `habitation`.",
    )
    def habitation(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        index, stack = year_tiles(
            settings, warehouse, country.code, year, columns=TILE_TABLE_COLUMNS
        )
        model_path = settings.country_dir(country.code) / "models" / "habitation.pt"
        workers, started = settings.worker_config(), time.perf_counter()
        probs = batch_inference.map_store(
            batch_inference.habitation_block,
            model_path,
            index["stack_path"].iloc[0] if len(index) else "",
            stack,
            settings.device,
            workers,
            empty=np.zeros((0, 3), np.float32),
            log=context.log.info,
        )
        rate = log_rate(
            context,
            "habitation",
            len(index),
            time.perf_counter() - started,
            workers.describe(len(index)),
        )
        frame = habitation_lib.habitation_table(index, probs)
        n = warehouse.write("habitation", frame, {"country": country.code, "year": year})
        return MaterializeResult(
            metadata={
                "tiles": n,
                "inhabited": int(frame["inhabited"].sum()),
                "urban": int(frame["urban"].sum()),
                "inhabited_share": float(frame["inhabited"].mean()) if n else 0.0,
                **rate,
            }
        )

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        code_version=learned_version(
            registry, clustering.__name__, deepcluster.__name__, folder_clusters.__name__
        ),
        specs=[
            AssetSpec(
                "clusters",
                owners=OWNERS,
                kinds={"scikitlearn", "duckdb"},
                deps=[p.from_years("patches"), p.from_years(habitation.key), habitation_model.key],
                description="Clusters of visually similar inhabited tiles over all the country's "
                "years: encoder features, k-means with K chosen by silhouette (or DeepCluster, or "
                "a ready-made cluster folder), urban and rural separately; the uninhabited tiles "
                "form the last cluster. One row per cluster; contact sheet and model file.",
            ),
            AssetSpec(
                "cluster_members",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=[p.from_years("patches"), p.from_years(habitation.key)],
                description="Every tile-year's cluster id (the uninhabited cluster for tiles the "
                "filter drops), with its inhabited / urban flags.",
            ),
        ],
    )
    def clusters(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse):
        country = country_only(context, settings)
        m = country.models
        keys = {"country": country.code}
        model = habitation_lib.load_habitation(
            settings.country_dir(country.code) / "models" / "habitation.pt", device=settings.device
        )
        frames, stacks = [], []
        for year in country.years:  # indexes in memory, images read by rows from each year's store
            index, stack = year_tiles(
                settings,
                warehouse,
                country.code,
                year,
                columns="country, year, tile_id, z, x, y, image_row, stack_path",
            )
            hab = required(warehouse, "habitation", {"country": country.code, "year": year})
            frames.append(
                index.merge(
                    hab[["tile_id", "inhabited", "urban"]], on="tile_id", how="left", validate="1:1"
                )
            )
            stacks.append(stack)
        tiles = pd.concat(frames, ignore_index=True)
        images = tile_store.StoreRows(stacks)
        inhabited = tiles["inhabited"].fillna(False).to_numpy(bool)
        urban = tiles["urban"].fillna(False).to_numpy(bool)
        # The fit sees a seeded sample of the inhabited tile-years (all of them in a small
        # country); the rest are assigned to the nearest centroid batch by batch.
        fit_rows = clustering.fit_sample(np.flatnonzero(inhabited), m.cluster_sample, m.seed)
        extra: dict = {
            "method": country.clusters,
            "fit_tile_years": len(fit_rows),
            "inhabited_tile_years": int(inhabited.sum()),
        }
        labels = np.full(len(tiles), -1, dtype=np.int64)
        if country.clusters_from_folder:
            folder = country.resolve(country.clusters)
            by_cluster, problems = tf.read_cluster_folder(folder, px=model.config.input_px)
            log_problems(
                context, f"{country.code}: cluster images skipped", [p["problem"] for p in problems]
            )
            result = folder_clusters.folder_cluster_result(
                model, by_cluster, m.folder_urban_clusters, source=str(folder)
            )
            cluster_model, todo = model, np.flatnonzero(inhabited)
            folder_images = {c: len(v) for c, v in by_cluster.items()}
            sheet = preview.contact_sheet(
                np.concatenate([by_cluster[c][:8] for c in sorted(by_cluster)]), cols=8
            )
            extra.update(
                {
                    "method": "folder",
                    "source": "folder",
                    "folder": MetadataValue.path(str(folder)),
                    "folder_images": int(sum(folder_images.values())),
                    "skipped_images": len(problems),
                }
            )
        else:
            if inhabited.sum() < 2:
                raise ValueError(
                    f"{country.code}: fewer than 2 inhabited tiles; nothing to cluster"
                )
            # k-means on the pretrained encoder's features, or DeepCluster (alternating k-means
            # pseudo-labels and CNN training) when the country asks for `clusters: deepcluster`.
            result, cluster_model, dc_history = deepcluster.cluster_inhabited(
                country.clusters,
                model,
                images[fit_rows],
                urban[fit_rows],
                k_range_urban=range(m.k_range_urban[0], m.k_range_urban[1] + 1),
                k_range_rural=range(m.k_range_rural[0], m.k_range_rural[1] + 1),
                seed=m.seed,
                rounds=m.deepcluster_rounds,
                epochs_per_round=m.deepcluster_epochs,
                device=settings.device,
            )
            if country.clusters == CLUSTERS_DEEPCLUSTER:
                dc_path = habitation_lib.save_habitation(
                    cluster_model, settings.country_dir(country.code) / "models" / "deepcluster.pt"
                )
                extra.update(
                    {
                        "deepcluster_encoder": MetadataValue.path(str(dc_path)),
                        "deepcluster_rounds": frame_md(pd.DataFrame(dc_history)),
                    }
                )
            labels[fit_rows] = result.labels
            todo = np.setdiff1d(np.flatnonzero(inhabited), fit_rows)
            folder_images = None
            sil = pd.DataFrame(
                [
                    {"group": g, "k": kk, "silhouette": s}
                    for g, d in result.silhouettes.items()
                    for kk, s in d.items()
                ]
            )
            extra["silhouettes"] = frame_md(sil) if len(sil) else MetadataValue.md("(single K)")
        k = result.k_urban + result.k_rural
        labels[~inhabited] = k  # the uninhabited cluster = K
        groups = urban if result.k_urban else np.zeros(len(tiles), bool)
        for part in np.array_split(todo, max(1, -(-len(todo) // 8192))) if len(todo) else []:
            labels[part] = clustering.assign_clusters(
                result, batch_inference.embed_rows(cluster_model, images, part), groups[part]
            )
        if folder_images is None:
            sheet = preview.cluster_sheet(images, labels, k + 1, seed=m.seed)
        members, summary = clustering.cluster_tables(
            tiles, labels, k, result.k_urban, inhabited, urban, folder_images=folder_images
        )
        n_members = warehouse.write("cluster_members", members, keys)
        n_clusters = warehouse.write("clusters", summary, keys)
        with atomic_path(settings.country_dir(country.code) / "models" / "clusters.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(result))
        sheet_path = settings.country_dir(country.code) / "clusters" / "contact_sheet.png"
        with atomic_path(sheet_path) as tmp:
            tmp.write_bytes(png_bytes(sheet, 4096))
        shown = ["cluster_id", "cluster_group", "n_tiles"] + (
            ["n_folder_images"] if folder_images else []
        )
        yield MaterializeResult(
            asset_key="clusters",
            metadata={
                "rows": n_clusters,
                "status": "ok",
                "clusters": k,
                "k_urban": result.k_urban,
                "k_rural": result.k_rural,
                "uninhabited_cluster": k,
                "tiles_per_cluster": frame_md(summary[shown]),
                "contact_sheet": image_md(
                    png_bytes(sheet, 640), "one row per cluster (last = uninhabited)"
                ),
                "contact_sheet_file": MetadataValue.path(str(sheet_path)),
                **extra,
            },
        )
        yield MaterializeResult(
            asset_key="cluster_members",
            metadata={
                "rows": n_members,
                "status": "ok",
                "tiles": n_members,
                "inhabited_tiles": int(inhabited.sum()),
            },
        )

    return [pretrain_set, habitation_model, habitation, clusters]
