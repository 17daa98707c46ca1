"""Stage 1: pretraining + the uninhabited filter, then clusters of visually similar tiles."""


import pickle

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core import imagery, sources
from siscore_assets.core import tile_folder as tf
from siscore_assets.core.countries import (
    CLUSTERS_DEEPCLUSTER,
    GENERATED,
    CountryConfig,
    CountryConfigError,
)
from siscore_assets.core.files import atomic_path
from siscore_assets.core.models import clustering, deepcluster, encoder

from ..common import OWNERS, country_only, country_year, frame_md, image_md, line_plot_md, png_bytes
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "stage1_clusters"
CLASSES = ("urban", "rural", "uninhabited")


def load_year_tiles(settings: SiscoreSettings, warehouse: Warehouse, code: str, year: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Usable patches of a country-year (index rows in stack order) and their image stack."""
    index = warehouse.read("patches", {"country": code, "year": year}, order_by="image_row")
    if index.empty:
        raise FileNotFoundError(f"no patches for {code}|{year}: materialise 'patches' first")
    index = index[index["status"] == imagery.STATUS_OK].reset_index(drop=True)
    stack = imagery.load_stack(settings.country_dir(code) / "patches" / f"{year}.npy")
    if len(stack) != len(index):
        raise ValueError(f"{code}|{year}: patch stack has {len(stack)} images, index {len(index)}: re-materialise 'patches'")
    return index, stack


def _clusters_from_folder(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse,
                          country: CountryConfig, model: encoder.HabitationModel, tiles: pd.DataFrame,
                          images: np.ndarray) -> MaterializeResult:
    """Stage 1 from ready-made clusters (``<folder>/<id>/*.png``, e.g. the paper's 22 for PRK).

    The folder's ids are the clusters (ids below ``models.folder_urban_clusters`` urban, the rest
    rural; the uninhabited cluster is max id + 1).  The country's own inhabited tiles are placed in
    the nearest cluster (encoder features, centroid of the cluster's images, within the tile's
    urban / rural group) so maps and tables show clusters; Stage 3 trains on the folder's images.
    """
    folder = country.resolve(country.clusters)
    m = country.models
    by_cluster, problems = tf.read_cluster_folder(folder, px=m.habitation_input_px)
    for prob in problems:
        context.log.warning(f"{country.code}: cluster image skipped: {prob['problem']}")
    ids = sorted(by_cluster)
    if ids != list(range(len(ids))):
        raise ValueError(f"{folder}: cluster ids must be 0..K-1, found {ids}")
    k = len(ids)
    k_urban = min(m.folder_urban_clusters, k)
    feats = {c: encoder.embed(model, imgs) for c, imgs in by_cluster.items()}
    all_feats = np.concatenate(list(feats.values()))
    scaler = clustering.StandardScaler().fit(all_feats)
    centroids = np.stack([scaler.transform(feats[c]).mean(axis=0) for c in ids])
    result = clustering.ClusterResult(labels=np.zeros(0, np.int64), k_urban=k_urban, k_rural=k - k_urban,
                                      silhouettes={}, centroids=centroids, scaler=scaler, pca=None)
    inhabited = tiles["inhabited"].fillna(False).to_numpy(bool)
    urban = tiles["urban"].fillna(False).to_numpy(bool)
    labels = np.full(len(tiles), k, dtype=np.int64)
    if inhabited.any():
        labels[inhabited] = clustering.assign_clusters(result, encoder.embed(model, images[inhabited]),
                                                       urban[inhabited] if k_urban else np.zeros(int(inhabited.sum()), bool))
    members = tiles[["country", "year", "tile_id", "z", "x", "y"]].copy()
    members["cluster_id"], members["inhabited"], members["urban"] = labels, inhabited, urban
    group = np.where(np.arange(k + 1) == k, "uninhabited", np.where(np.arange(k + 1) < k_urban, "urban", "rural"))
    counts = pd.Series(labels).value_counts()
    summary = pd.DataFrame({"country": country.code, "cluster_id": np.arange(k + 1), "cluster_group": group,
                            "n_tiles": [int(counts.get(c, 0)) for c in range(k + 1)],
                            "n_folder_images": [len(by_cluster.get(c, [])) for c in range(k + 1)],
                            "k_urban": k_urban, "k_rural": k - k_urban})
    warehouse.write("cluster_members", members, {"country": country.code})
    warehouse.write("clusters", summary, {"country": country.code})
    model_path = settings.country_dir(country.code) / "models" / "clusters.pkl"
    with atomic_path(model_path) as tmp:
        tmp.write_bytes(pickle.dumps(result))
    sheet = imagery.contact_sheet(np.concatenate([by_cluster[c][:8] for c in ids]), cols=8)
    sheet_path = settings.country_dir(country.code) / "clusters" / "contact_sheet.png"
    sheet_path.parent.mkdir(parents=True, exist_ok=True)
    sheet_path.write_bytes(png_bytes(sheet, 4096))
    return MaterializeResult(metadata={
        "source": "folder", "folder": MetadataValue.path(str(folder)),
        "clusters": k, "k_urban": k_urban, "k_rural": k - k_urban, "uninhabited_cluster": k,
        "folder_images": int(sum(len(v) for v in by_cluster.values())), "skipped_images": len(problems),
        "tiles": len(members), "inhabited_tiles": int(inhabited.sum()),
        "tiles_per_cluster": frame_md(summary[["cluster_id", "cluster_group", "n_tiles", "n_folder_images"]]),
        "contact_sheet": image_md(png_bytes(sheet, 640), "8 folder images per cluster, one row each"),
        "contact_sheet_file": MetadataValue.path(str(sheet_path)),
    })


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"numpy"},
        description="Soft-labelled pretraining images (urban / rural / uninhabited shares of four "
        "votes) for the encoder and the uninhabited filter.",
    )
    def pretrain_set(context: AssetExecutionContext, settings: SiscoreSettings) -> MaterializeResult:
        country = country_only(context, settings)
        if country.pretrain != GENERATED:
            # A labelled folder (the NK sample's 740 images), kept at the classifier's input size.
            images, labels, _ = tf.read_pretrain_folder(country.resolve(country.pretrain),
                                                        px=country.models.habitation_input_px)
        elif not country.is_synthetic:
            raise CountryConfigError(f"country {country.code}: 'pretrain: generated' needs a synthetic source; "
                                     "point 'pretrain' at a folder with images/ and labels.csv")
        else:
            images, labels = sources.synthetic_country(country).pretrain_set(sources.pretrain_images(country),
                                                                             seed=country.models.seed)
        path = settings.country_dir(country.code) / "pretrain" / "pretrain.npz"
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, images=images, labels=labels)
        majority = pd.Series(np.asarray(CLASSES)[labels.argmax(axis=1)]).value_counts()
        return MaterializeResult(metadata={
            "images": len(images), "file": MetadataValue.path(str(path)),
            **{f"majority_{k}": int(v) for k, v in majority.items()},
            "sample": image_md(png_bytes(imagery.contact_sheet(images[:32])), "pretraining sample"),
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=[pretrain_set], kinds={"pytorch"},
        description="Small CNN trained with soft-label cross-entropy on the pretraining set: the "
        "uninhabited filter and the encoder whose features are clustered.",
    )
    def habitation_model(context: AssetExecutionContext, settings: SiscoreSettings) -> MaterializeResult:
        country = country_only(context, settings)
        data = np.load(settings.country_dir(country.code) / "pretrain" / "pretrain.npz")
        m = country.models
        images, labels = data["images"], data["labels"]
        train_idx, held_idx = encoder.holdout_split(labels, m.habitation_holdout, m.seed)
        model, history = encoder.train_habitation(
            images[train_idx], labels[train_idx], epochs=m.habitation_epochs, seed=m.seed,
            input_px=m.habitation_input_px, device=settings.device, normalize=m.normalize,
        )
        path = settings.country_dir(country.code) / "models" / "habitation.pt"
        encoder.save_habitation(model, path)
        held = encoder.evaluate_habitation(model, images[held_idx], labels[held_idx]) if len(held_idx) else {}
        return MaterializeResult(metadata={
            "checkpoint": MetadataValue.path(str(path)),
            "train_images": len(train_idx), "heldout_images": len(held_idx),
            **{f"heldout_{k}": v for k, v in held.items()},
            "epochs": len(history),
            "final_loss": float(history[-1]["loss"]),
            "final_accuracy": float(history[-1]["accuracy"]),
            "training": line_plot_md({"loss": [h["loss"] for h in history],
                                      "accuracy": [h["accuracy"] for h in history]},
                                     "habitation training", "epoch"),
        })

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"pytorch", "duckdb"},
        deps=["patches", habitation_model],
        description="Urban / rural / uninhabited probabilities per usable tile; a tile is inhabited "
        "when P(uninhabited) < 0.5. Table `habitation`.",
    )
    def habitation(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        index, stack = load_year_tiles(settings, warehouse, country.code, year)
        model = encoder.load_habitation(settings.country_dir(country.code) / "models" / "habitation.pt", device=settings.device)
        probs = encoder.predict_habitation(model, np.asarray(stack))
        frame = index[["country", "year", "tile_id", "z", "x", "y"]].copy()
        frame["p_urban"], frame["p_rural"], frame["p_uninhabited"] = probs[:, 0], probs[:, 1], probs[:, 2]
        frame["inhabited"] = frame["p_uninhabited"] < 0.5
        frame["urban"] = frame["inhabited"] & (frame["p_urban"] >= frame["p_rural"])
        n = warehouse.write("habitation", frame, {"country": country.code, "year": year})
        return MaterializeResult(metadata={
            "tiles": n, "inhabited": int(frame["inhabited"].sum()), "urban": int(frame["urban"].sum()),
            "inhabited_share": float(frame["inhabited"].mean()) if n else 0.0,
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"scikitlearn", "duckdb"},
        deps=["patches",
              habitation, habitation_model],
        description="Clusters of visually similar inhabited tiles over all the country's years: "
        "encoder features, k-means with K chosen by silhouette, urban and rural separately; the "
        "uninhabited tiles form the last cluster. Tables `clusters` and `cluster_members`.",
    )
    def clusters(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        model = encoder.load_habitation(settings.country_dir(country.code) / "models" / "habitation.pt", device=settings.device)
        frames, stacks = [], []
        for year in country.years:
            index, stack = load_year_tiles(settings, warehouse, country.code, year)
            hab = warehouse.read("habitation", {"country": country.code, "year": year})
            if hab.empty:
                raise FileNotFoundError(f"no habitation for {country.code}|{year}: materialise 'habitation' first")
            index = index.merge(hab[["tile_id", "inhabited", "urban"]], on="tile_id", how="left", validate="1:1")
            frames.append(index)
            stacks.append(np.asarray(stack))
        tiles = pd.concat(frames, ignore_index=True)
        images = np.concatenate(stacks)
        if country.clusters_from_folder:
            return _clusters_from_folder(context, settings, warehouse, country, model, tiles, images)
        inhabited = tiles["inhabited"].fillna(False).to_numpy(bool)
        if inhabited.sum() < 2:
            raise ValueError(f"{country.code}: fewer than 2 inhabited tiles; nothing to cluster")
        m = country.models
        # k-means on the pretrained encoder's features, or DeepCluster (alternating k-means
        # pseudo-labels and CNN training) when the country asks for `clusters: deepcluster`.
        result, cluster_model, dc_history = deepcluster.cluster_inhabited(
            country.clusters, model, images[inhabited], tiles.loc[inhabited, "urban"].to_numpy(bool),
            k_range_urban=range(m.k_range_urban[0], m.k_range_urban[1] + 1),
            k_range_rural=range(m.k_range_rural[0], m.k_range_rural[1] + 1), seed=m.seed,
            rounds=m.deepcluster_rounds, epochs_per_round=m.deepcluster_epochs, device=settings.device,
        )
        extra = {}
        if country.clusters == CLUSTERS_DEEPCLUSTER:
            dc_path = encoder.save_habitation(cluster_model, settings.country_dir(country.code) / "models" / "deepcluster.pt")
            extra = {"deepcluster_encoder": MetadataValue.path(str(dc_path)),
                     "deepcluster_rounds": frame_md(pd.DataFrame(dc_history))}
        k = result.n_clusters
        labels = np.full(len(tiles), k, dtype=np.int64)  # uninhabited cluster = K
        labels[inhabited] = result.labels
        members = tiles[["country", "year", "tile_id", "z", "x", "y"]].copy()
        members["cluster_id"] = labels
        members["inhabited"] = inhabited
        members["urban"] = tiles["urban"].fillna(False).to_numpy(bool)
        group = np.where(labels == k, "uninhabited", np.where(labels < result.k_urban, "urban", "rural"))
        summary = (pd.DataFrame({"cluster_id": labels, "cluster_group": group}).groupby(["cluster_id", "cluster_group"])
                   .size().rename("n_tiles").reset_index())
        summary.insert(0, "country", country.code)
        summary["k_urban"], summary["k_rural"] = result.k_urban, result.k_rural
        warehouse.write("cluster_members", members, {"country": country.code})
        warehouse.write("clusters", summary, {"country": country.code})
        model_path = settings.country_dir(country.code) / "models" / "clusters.pkl"
        with atomic_path(model_path) as tmp:
            tmp.write_bytes(pickle.dumps(result))
        # One row of 8 sample tiles per cluster: what an annotator will look at.
        rng = np.random.default_rng(m.seed)
        rows = []
        for cid in range(k + 1):
            idx = np.flatnonzero(labels == cid)
            pick = rng.choice(idx, size=min(8, len(idx)), replace=False) if len(idx) else []
            row = np.zeros((8,) + images.shape[1:], np.uint8)
            row[: len(pick)] = images[np.sort(pick)] if len(pick) else row[:0]
            rows.append(row)
        sheet = imagery.contact_sheet(np.concatenate(rows), cols=8)
        sheet_path = settings.country_dir(country.code) / "clusters" / "contact_sheet.png"
        sheet_path.parent.mkdir(parents=True, exist_ok=True)
        sheet_path.write_bytes(png_bytes(sheet, 4096))
        sil = pd.DataFrame([{"group": g, "k": kk, "silhouette": s} for g, d in result.silhouettes.items() for kk, s in d.items()])
        return MaterializeResult(metadata={
            "clusters": k, "k_urban": result.k_urban, "k_rural": result.k_rural,
            "uninhabited_cluster": k, "tiles": len(members), "inhabited_tiles": int(inhabited.sum()),
            "silhouettes": frame_md(sil) if len(sil) else MetadataValue.md("(single K)"),
            "contact_sheet": image_md(png_bytes(sheet, 640), "one row per cluster (last = uninhabited)"),
            "contact_sheet_file": MetadataValue.path(str(sheet_path)),
            "method": country.clusters, **extra,
        })

    return [pretrain_set, habitation_model, habitation, clusters]
