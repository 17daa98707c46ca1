"""The annotation kit: one self-contained page per country showing each cluster's sample tiles,
on which people rank the clusters and export ``<name>.pog``."""

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core.ranking import annotation_kit as kits
from siscore_assets.core.ranking import annotators
from siscore_assets.core.storage.files import atomic_path

from ..common.context import OWNERS, country_only, imagery_skipped, log_problems
from ..common.data import cluster_ids, required, year_tiles
from ..common.metadata import image_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "ranking"
KIT_FILE = "annotation_kit.html"
SAMPLES_PER_CLUSTER = 8
SENSOR_NAME = (
    "annotation_files_changed"  # defined by ranking.sensors; named here for the description
)


def _sample_tiles(
    settings: SiscoreSettings, warehouse: Warehouse, code: str, *, samples: int, seed: int
) -> tuple[dict[int, list[np.ndarray]], dict[int, str], list[str]]:
    """Up to ``samples`` tiles of every inhabited cluster, read from the memory-mapped patch
    stacks (only the chosen rows), their captions, and what could not be found."""
    ids, _ = cluster_ids(warehouse, code)
    members = required(
        warehouse, "cluster_members", {"country": code}, asset="clusters", order_by="year, tile_id"
    )
    summary = required(warehouse, "clusters", {"country": code}).set_index("cluster_id")
    picks = annotators.sample_members(members, ids, samples, seed)
    wanted = pd.concat(picks.values())
    images: dict[tuple[int, str], np.ndarray] = {}
    for year in sorted(wanted["year"].unique()):
        index, stack = year_tiles(settings, warehouse, code, int(year))
        row_of = dict(zip(index["tile_id"], index["image_row"]))
        for tile_id in wanted.loc[wanted["year"] == year, "tile_id"]:
            if tile_id in row_of:
                images[(int(year), tile_id)] = np.asarray(stack[int(row_of[tile_id])])
    tiles, missing = {}, []
    for cid, rows in picks.items():
        tiles[cid] = []
        for year, tile_id in zip(rows["year"], rows["tile_id"]):
            if (int(year), tile_id) in images:
                tiles[cid].append(images[(int(year), tile_id)])
            else:
                missing.append(f"cluster {cid}: {tile_id} ({year}) not in the patch stack")
    captions = {
        cid: f"{summary.at[cid, 'cluster_group']}, {int(summary.at[cid, 'n_tiles'])} tiles"
        for cid in ids
        if cid in summary.index
    }
    return tiles, captions, missing


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=["clusters", "cluster_members", p.from_years("patches")],
        kinds={"html"},
        description="The annotation kit: one self-contained HTML page (opens from file://, no "
        "server, no network) showing each inhabited cluster as a contact sheet of sample tiles. "
        "Annotators drag clusters into tiers, type a name and export `<name>.pog`; dropping that "
        f"file into the annotation folder makes the `{SENSOR_NAME}` sensor re-run the POG assets.",
    )
    def annotation_kit(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        tiles, captions, missing = _sample_tiles(
            settings, warehouse, country.code, samples=SAMPLES_PER_CLUSTER, seed=country.models.seed
        )
        folder = country.annotation_folder(settings.root)
        kit = kits.render_annotation_kit(
            tiles,
            title=f"{country.name}: rank the clusters",
            country=country.code,
            captions=captions,
            samples=SAMPLES_PER_CLUSTER,
            seed=country.models.seed,
            instructions_note=f"(Coordinator: drop it into {folder}.)",
        )
        log_problems(context, "annotation kit", [*missing, *kit.skipped])
        path = settings.country_dir(country.code) / KIT_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(kit.html, encoding="utf-8")
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(path.resolve())),
                "clusters": len(kit.clusters),
                "images": int(sum(kit.images_per_cluster.values())),
                "missing_images": len(missing) + len(kit.skipped),
                "size_kb": round(kit.size_bytes / 1024, 1),
                "annotation_folder": MetadataValue.path(str(folder)),
                "preview": image_md(
                    png_bytes(kit.preview, 640), "first samples of each cluster, one row each"
                ),
            }
        )

    return [annotation_kit]
