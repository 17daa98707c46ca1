"""Clusters (Stage 1): pretraining and the uninhabited filter, then clusters of similar tiles."""

import time
from pathlib import Path

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
    PRETRAIN_KIT,
    CountryConfig,
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
    scene_features,
    splits,
    stage1,
    tile_labels,
    training_data,
    transfer,
)
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models.common import resize_images
from siscore_assets.core.storage.files import StagedFiles, atomic_path

from ..common import tile_rows
from ..common.context import (
    OWNERS,
    country_only,
    country_year,
    imagery_bound,
    imagery_not_configured,
    imagery_skipped,
    learned_version,
    log_problems,
    log_rate,
)
from ..common.data import (
    FILTER_IMAGES,
    LABEL_GROUPS,
    LABEL_KIT_FILE,
    MAX_UNLABELLED_TILES,
    YEAR_HOLDOUT_SHARE,
    label_exports_folder,
    labelled_filter_images,
    labelled_groups,
    labelled_images,
    labelled_roles,
    labelled_tiles,
    merged_labels_path,
    tile_year_sample,
    unlabelled_tile_cap,
    year_store,
)
from ..common.metadata import frame_md, image_md, line_plot_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse
from ..common.start_from import checked_source, lineage_md
from .tables import country_tiles, write_clustering, write_habitation

GROUP = "clusters"
MODEL_SETTINGS = "siscore_assets.core.model_settings"


def unlabelled_images(
    country,
    settings: SiscoreSettings,
    warehouse: Warehouse,
    px: int,
    leave_out: frozenset[str] = frozenset(),
) -> tuple[np.ndarray, np.ndarray]:
    """The mean teacher's unlabelled images: every tile-year of a seeded sample of tiles (grouped
    by tile id: the same place in another year; ``tile_year_sample``, at most
    ``unlabelled_tile_cap(px)`` tiles as for the scorer at that size, less the tiles held out for
    validation's year agreement and the places in ``leave_out``: the held-out labelled ones)
    and, for a cluster folder, the training split of its images (never its test split)."""

    cap = min(MAX_UNLABELLED_TILES, unlabelled_tile_cap(px))  # the scorer's pixel budget

    def sample():
        for _, ids, images in tile_year_sample(
            settings,
            warehouse,
            country,
            seed=country.models.seed,
            max_tiles=cap,
            holdout=YEAR_HOLDOUT_SHARE,
        ):
            keep = [i for i, t in enumerate(ids) if str(t) not in leave_out]
            if len(keep) < len(ids):
                ids, images = [ids[i] for i in keep], np.asarray(images)[keep]
            if len(ids):
                yield ids, resize_images(images, px)

    un, groups = training_data.unlabelled_years(sample())
    if country.clusters_from_folder:
        by_cluster, _ = tf.read_cluster_folder(country.resolve(country.clusters), px=px)
        m = country.models
        train, val, _ = splits.cluster_splits(
            by_cluster, m.holdout_per_cluster, m.val_per_cluster, m.seed
        )
        extra = [v for part in (train, val) for _, v in sorted(part.items())]
        if extra:
            more = np.concatenate(extra)
            un = np.concatenate([un, more]) if len(un) else more
            groups = np.concatenate(
                [groups, np.asarray([f"folder_{i}" for i in range(len(more))], dtype=object)]
            )
    return un, groups


def cluster_folder(context, country, px: int) -> tuple[dict[int, np.ndarray] | None, dict]:
    """A cluster-folder country's images by cluster id (at the encoder's input size) and what to
    report of the folder; ``(None, {})`` for a country whose clusters are fitted."""
    if not country.clusters_from_folder:
        return None, {}
    folder = country.resolve(country.clusters)
    by_cluster, problems = tf.read_cluster_folder(folder, px=px)
    log_problems(
        context, f"{country.code}: cluster images skipped", [p["problem"] for p in problems]
    )
    return by_cluster, {
        "method": "folder",
        "source": "folder",
        "folder": MetadataValue.path(str(folder)),
        "folder_images": int(sum(len(v) for v in by_cluster.values())),
        "skipped_images": len(problems),
    }


STATS_FILTER = "habitation_stats.pkl"


def fit_stats_filter(
    files: StagedFiles, settings: SiscoreSettings, code: str, images, labels, train_idx, held_idx
) -> dict:
    """``stage1_features: stats``: the descriptor filter fitted on the training rows (held rows
    reported only), staged beside the network (``files``: the caller commits); what to report.
    The labelled images are taken at the tiles' stored size (`pretrain_set` keeps them when the
    network's differs): the size the filter is applied at."""
    images = labelled_filter_images(settings, code, images)
    fit = scene_features.fit_habitation_stats(
        scene_features.descriptor_rows(images, train_idx), labels[train_idx]
    )
    path = files.stage(
        settings.country_dir(code) / "models" / STATS_FILTER,
        lambda tmp: scene_features.save_stats(fit, tmp),
    )
    held = scene_features.heldout_metrics(
        fit, scene_features.descriptor_rows(images, held_idx), labels[held_idx]
    )
    return {
        "filter": "stats",
        "filter_image_px": int(images.shape[1]),
        "filter_checkpoint": MetadataValue.path(str(path)),
        **{f"heldout_filter_{k}": v for k, v in held.items()},
    }


def reused_habitation(settings: SiscoreSettings, country) -> MaterializeResult:
    """``start_from``: the source country's Stage-1 network copied here instead of pretraining
    (checked first: nothing is written when it cannot be reused), measured on this country's
    held-out labelled images; a descriptor filter (``stage1_features: stats``) is fitted here."""
    _, folder = checked_source(settings, country)
    images, labels = labelled_images(settings, country.code)
    train_idx, _, held_idx = labelled_roles(
        country, labels, labelled_groups(settings, country.code)
    )
    with StagedFiles() as files:
        extra = (
            fit_stats_filter(files, settings, country.code, images, labels, train_idx, held_idx)
            if stage1.uses_stats(country.models)
            else {}
        )
        path = settings.country_dir(country.code) / "models" / transfer.HABITATION_FILE
        record = transfer.copy_checkpoint(folder / transfer.HABITATION_FILE, path)
        model = habitation_lib.load_habitation(path, device=settings.device)
        held = (
            habitation_lib.evaluate_habitation(model, images[held_idx], labels[held_idx])
            if len(held_idx)
            else {}
        )
        files.commit()
    return MaterializeResult(
        metadata={
            "checkpoint": MetadataValue.path(str(path)),
            "train_images": 0,
            "heldout_images": len(held_idx),
            **{f"heldout_{k}": v for k, v in held.items()},
            "epochs": 0,
            **extra,
            **lineage_md(country, {transfer.HABITATION_FILE: record}),
        }
    )


def extra_for_clusters(
    settings: SiscoreSettings, country, tile_px: int
) -> tuple[list, stage1.ExtraImages | None]:
    """The extra unlabelled images (``stage1_extra_images``) and the filter's calls on them; an
    image that is not ``tile_px`` square (the stored tiles' size) is an error naming it."""
    m = country.models
    if not (stage1.uses_stats(m) and m.stage1_extra_images):
        return [], None
    paths = stage1.extra_image_paths([country.resolve(f) for f in m.stage1_extra_images])
    model = scene_features.load_stats(settings.country_dir(country.code) / "models" / STATS_FILTER)
    return paths, stage1.extra_images(paths, model, tile_px)


def kit_labels(settings: SiscoreSettings, country: CountryConfig) -> Path:
    """The merged labels ``pretrain: kit`` reads; a clear next step when there are none yet."""
    path = merged_labels_path(settings, country.code)
    if not path.is_file():
        raise CountryConfigError(
            f"country {country.code}: 'pretrain: kit' reads the labelling kit's merged labels "
            f"({path}), which do not exist yet: label tiles with "
            f"{settings.country_dir(country.code) / LABEL_KIT_FILE}, put the exports in "
            f"{label_exports_folder(settings, country.code)}/ and materialise "
            "'habitation_labels' (docs/new-country.md)"
        )
    return path


def fit_metadata(res: stage1.CountryClusters, deep: bool) -> dict:
    """DeepCluster's pseudo-label rounds and the silhouette of every K tried, as metadata."""
    out: dict = {}
    if deep:
        out["deepcluster_rounds"] = frame_md(pd.DataFrame(res.deepcluster_history))
    if res.silhouettes is not None:
        sil = res.silhouettes
        out["silhouettes"] = frame_md(sil) if len(sil) else MetadataValue.md("(single K)")
    return out


def habitation_metadata(
    trained: stage1.HabitationTraining, path: Path, images: tuple[int, int], extra: dict
) -> dict:
    """What `habitation_model` reports of a network trained on ``images`` (train, held-out) and
    saved at ``path`` (``extra``: what the asset adds before the mean teacher's details)."""
    history = trained.history
    return {
        "checkpoint": MetadataValue.path(str(path)),
        "train_images": images[0],
        "heldout_images": images[1],
        **{f"heldout_{k}": v for k, v in trained.heldout.items()},
        "epochs": len(history),
        "final_loss": float(history[-1]["loss"]),
        "final_accuracy": float(history[-1]["accuracy"]),
        **extra,
        **trained.details,
        "training": line_plot_md(
            {"loss": [h["loss"] for h in history], "accuracy": [h["accuracy"] for h in history]},
            "habitation training",
            "epoch",
        ),
    }


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"numpy"},
        deps=[p.from_years("patches"), "habitation_labels"],
        description="Soft-labelled pretraining images (urban / rural / uninhabited shares of four "
        "votes) for the encoder and the uninhabited filter: a folder of images + labels.csv, a "
        "labels.csv of the country's own tile-years, or with `pretrain: kit` the labelling "
        "kit's merged labels (`habitation_labels`).",
    )
    def pretrain_set(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        px = stage1.pretrain_image_px(country.models)
        named = country.pretrain not in (GENERATED, PRETRAIN_KIT)
        folder = country.resolve(country.pretrain) if named else None
        if country.pretrain == PRETRAIN_KIT:  # the labelling kit's merged labels, as they are
            tile_csv = kit_labels(settings, country)
        elif folder is not None and tile_labels.is_tile_labels(folder / "labels.csv"):
            tile_csv = folder / "labels.csv"  # labels of the country's own tile-years
        else:
            tile_csv = None
        extra, at_store = {}, None
        if tile_csv is not None:  # read once, as stored; the network's images resized from it
            at_store, labels, ids = labelled_tiles(settings, warehouse, country, tile_csv, None)
            images = resize_images(at_store, px)
            extra[LABEL_GROUPS] = ids.to_numpy(dtype=str)  # the split keeps a place together
        elif folder is not None:
            # A labelled folder (the NK sample's images), kept at the classifier's input size.
            images, labels, _ = tf.read_pretrain_folder(folder, px=px)
        elif not country.is_synthetic:
            raise CountryConfigError(
                f"country {country.code}: 'pretrain: generated' needs a synthetic source; "
                "label tiles with the labelling kit and set 'pretrain: kit', or point "
                "'pretrain' at a folder with images/ and labels.csv"
            )
        else:
            images, labels = sources.synthetic_country(country).pretrain_set(
                sources.pretrain_images(country), seed=country.models.seed
            )
        if stage1.uses_stats(country.models):
            # the descriptor filter is applied to tiles as stored; descriptors change with the
            # image's size, so it is fitted on the labelled tiles at that size, not at the
            # network's input size
            if at_store is None and folder is not None:  # (the kit's tiles: read above)
                at_store, _, _ = tf.read_pretrain_folder(folder, px=sources.store_px(country))
            elif at_store is None:  # rendered at the synthetic tiles' size, stored as said
                px_store = sources.store_px(country)
                at_store = resize_images(images, px_store) if px_store else images
            if at_store.shape[1:3] != images.shape[1:3]:
                extra[FILTER_IMAGES] = at_store
        path = settings.country_dir(country.code) / "pretrain" / "pretrain.npz"
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, images=images, labels=labels, **extra)
        return MaterializeResult(
            metadata={
                "images": len(images),
                "file": MetadataValue.path(str(path)),
                **{f"majority_{k}": v for k, v in stage1.majority_counts(labels).items()},
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
            registry,
            habitation_lib.__name__,
            pretraining.__name__,
            scene_features.__name__,
            stage1.__name__,
            transfer.__name__,
            MODEL_SETTINGS,
        ),
        description="Soft-label CNN on the pretraining set: the uninhabited filter and the encoder "
        "whose features are clustered. With `pretraining: mean_teacher` (real imagery): a "
        "ResNet-18 with a mean-teacher consistency loss on the unlabelled tiles (every year of the "
        "country's tiles, the cluster folder's training images), which also initialises the "
        "scorer. With `start_from` (docs/new-country.md): the named trained country's network, "
        "copied and measured here, instead of pretraining.",
    )
    def habitation_model(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        if country.models.start_from:  # another country's Stage-1 network, copied
            return reused_habitation(settings, country)
        data = np.load(settings.country_dir(country.code) / "pretrain" / "pretrain.npz")
        m = country.models
        images, labels = data["images"], data["labels"]
        # the scorer's selection rows stay out of pretraining too: selection never sees
        # trained-on images
        groups_of_labels = labelled_groups(settings, country.code)
        train_idx, sel_idx, held_idx = labelled_roles(country, labels, groups_of_labels)
        extra: dict = {}
        un = groups = None
        if stage1.uses_mean_teacher(m):  # the labelled places checked on are never seen
            extra["selection_images"] = len(sel_idx)
            checked = splits.places_of(groups_of_labels, sel_idx, held_idx)
            un, groups = unlabelled_images(country, settings, warehouse, m.pretrain_px, checked)
        trained = stage1.train_habitation_model(
            images,
            labels,
            train_idx,
            held_idx,
            m,
            unlabelled=un,
            groups=groups,
            device=settings.device,
        )
        path = settings.country_dir(country.code) / "models" / "habitation.pt"
        # everything computed and staged before the last run's filter and network are replaced
        with StagedFiles() as files:
            if stage1.uses_stats(m):
                extra.update(
                    fit_stats_filter(
                        files, settings, country.code, images, labels, train_idx, held_idx
                    )
                )
            metadata = habitation_metadata(trained, path, (len(train_idx), len(held_idx)), extra)
            net = trained.model
            files.stage(path, lambda tmp: habitation_lib.save_habitation(net, tmp, name=path.name))
            files.commit()
        return MaterializeResult(metadata=metadata)

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"pytorch", "duckdb"},
        deps=[p.same("patches"), p.from_country(habitation_model.key)],
        description="Urban / rural / uninhabited probabilities per usable tile; a tile is "
        "inhabited when P(uninhabited) < 0.5. Table `habitation`.",
    )
    def habitation(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if done := imagery_not_configured(warehouse, country, {"habitation": keys}):
            return done[0]
        store_path, stack = year_store(settings, warehouse, country.code, year)
        order = tile_rows.year_order(warehouse, country.code, year)
        stats = stage1.uses_stats(country.models)
        models = settings.country_dir(country.code) / "models"
        model_path = models / (STATS_FILTER if stats else "habitation.pt")
        workers, started = settings.worker_config(), time.perf_counter()
        probs = batch_inference.map_store(
            scene_features.habitation_block if stats else batch_inference.habitation_block,
            model_path,
            store_path,
            stack,
            settings.device,
            workers,
            empty=np.zeros((0, 3), np.float32),
            log=context.log.info,
        )
        rate = log_rate(
            context,
            "habitation",
            len(probs),
            time.perf_counter() - started,
            workers.describe(len(probs)),
        )
        flags = habitation_lib.habitation_columns(probs.reshape(-1, 3))
        n = write_habitation(warehouse, country.code, year, flags, order)
        return MaterializeResult(
            metadata={
                "tiles": n,
                "inhabited": int(flags["inhabited"].sum()),
                "urban": int(flags["urban"].sum()),
                "inhabited_share": float(flags["inhabited"].mean()) if n else 0.0,
                **rate,
            }
        )

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        code_version=learned_version(
            registry,
            clustering.__name__,
            deepcluster.__name__,
            folder_clusters.__name__,
            scene_features.__name__,
            stage1.__name__,
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
    @imagery_bound("clusters", "cluster_members")  # an analysis-only country: not configured
    def clusters(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse):
        country = country_only(context, settings)
        model = habitation_lib.load_habitation(
            settings.country_dir(country.code) / "models" / "habitation.pt", device=settings.device
        )
        tiles, images, orders = country_tiles(settings, warehouse, country.code, country.years)
        by_cluster, extra = cluster_folder(context, country, model.config.input_px)
        extra_paths, more = extra_for_clusters(settings, country, images.shape[1])
        # The fit sees a seeded sample of the inhabited tile-years (all of them in a small
        # country); the rest are assigned to the nearest centroid batch by batch.
        res = stage1.cluster_country(
            tiles,
            images,
            model,
            country.models,
            country.clusters,
            by_cluster=by_cluster,
            folder_source=str(country.resolve(country.clusters)),
            device=settings.device,
            country=country.code,
            extra=more,
        )
        deep = country.clusters == CLUSTERS_DEEPCLUSTER
        extra.update(fit_metadata(res, deep))
        shown = ["cluster_id", "cluster_group", "n_tiles"]
        shown += ["n_folder_images"] if res.folder_images else []
        sheet = image_md(png_bytes(res.sheet, 640), "one row per cluster (last = uninhabited)")
        n_members, n_clusters, written = write_clustering(
            settings, warehouse, country, res, orders, extra_paths
        )
        extra.update(written)
        yield MaterializeResult(
            asset_key="clusters",
            metadata={
                "rows": n_clusters,
                "status": "ok",
                "clusters": res.k,
                "k_urban": res.result.k_urban,
                "k_rural": res.result.k_rural,
                "uninhabited_cluster": res.k,
                "tiles_per_cluster": frame_md(res.summary[shown]),
                "contact_sheet": sheet,
                "method": country.clusters,
                "features": country.models.stage1_features,
                "fit_tile_years": len(res.fit_rows),
                "inhabited_tile_years": int(res.inhabited.sum()),
                **extra,
            },
        )
        yield MaterializeResult(
            asset_key="cluster_members",
            metadata={
                "rows": n_members,
                "status": "ok",
                "tiles": n_members,
                "inhabited_tiles": int(res.inhabited.sum()),
            },
        )

    return [pretrain_set, habitation_model, habitation, clusters]
