"""Stage 2 wiring for people: the annotation kit page per country, and the sensor that turns an
exported ``<name>.pog`` dropped into the annotation folder into a re-run of the POG assets."""


import json

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from siscore_assets.core import annotation_kit as kits
from siscore_assets.core import imagery
from siscore_assets.core import pog as pogs
from siscore_assets.core.files import atomic_path

from ..common import OWNERS, country_only, image_md, png_bytes
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse
from .assets import GROUP, SIMULATED_MANIFEST, cluster_ids

KIT_FILE = "annotation_kit.html"
SAMPLES_PER_CLUSTER = 8
# What an annotation file changes: re-run exactly these, for the one country whose folder changed.
REFRESH_ASSETS = ("annotator_pogs", "pog_agreement", "ensemble_pog")
REFRESH_JOB = "annotation_refresh"
SENSOR_NAME = "annotation_files_changed"
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
           DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def sample_cluster_tiles(
    settings: SiscoreSettings, warehouse: Warehouse, code: str, *, samples: int, seed: int
) -> tuple[dict[int, list[np.ndarray]], dict[int, str], list[str]]:
    """Up to ``samples`` tiles of every inhabited cluster, read from the patch stacks.

    Only the chosen rows are read (memory-mapped stacks), so a large country costs no more than a
    small one.  Returns the images, captions (urban/rural and size) and what could not be found.
    """
    ids, _ = cluster_ids(warehouse, code)
    members = warehouse.read("cluster_members", {"country": code}, order_by="year, tile_id")
    summary = warehouse.read("clusters", {"country": code}).set_index("cluster_id")
    if members.empty:
        raise FileNotFoundError(f"no cluster members for {code}: materialise 'clusters' first")
    rng = np.random.default_rng(seed)
    picks: dict[int, pd.DataFrame] = {}
    for cid in ids:
        rows = members[members["cluster_id"] == cid]
        chosen = np.sort(rng.choice(len(rows), size=min(samples, len(rows)), replace=False))
        picks[cid] = rows.iloc[chosen]
    wanted = pd.concat(picks.values())
    images: dict[tuple[int, str], np.ndarray] = {}
    for year in sorted(wanted["year"].unique()):
        index = warehouse.read("patches", {"country": code, "year": int(year)})
        ok = index[index["status"] == imagery.STATUS_OK]
        path = settings.country_dir(code) / "patches" / f"{int(year)}.npy"
        if not path.is_file():
            raise FileNotFoundError(f"patch stack not found: {path} (materialise 'patches' first)")
        stack = np.load(path, mmap_mode="r")
        if len(stack) != len(ok):
            raise ValueError(f"{code}|{year}: patch stack has {len(stack)} images, index {len(ok)}: "
                             "re-materialise 'patches'")
        row_of = dict(zip(ok["tile_id"], ok["image_row"]))
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
    captions = {cid: f"{summary.at[cid, 'cluster_group']}, {int(summary.at[cid, 'n_tiles'])} tiles"
                for cid in ids if cid in summary.index}
    return tiles, captions, missing


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=["clusters"], kinds={"html"},
        description="The annotation kit: one self-contained HTML page (opens from file://, no "
        "server, no network) showing each inhabited cluster as a contact sheet of sample tiles. "
        "Annotators drag clusters into tiers, type a name and export `<name>.pog`; dropping that "
        f"file into the annotation folder makes the `{SENSOR_NAME}` sensor re-run the POG assets.",
    )
    def annotation_kit(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        tiles, captions, missing = sample_cluster_tiles(
            settings, warehouse, country.code, samples=SAMPLES_PER_CLUSTER, seed=country.models.seed)
        folder = country.annotation_folder(settings.root)
        kit = kits.render_annotation_kit(
            tiles, title=f"{country.name}: rank the clusters", country=country.code,
            captions=captions, samples=SAMPLES_PER_CLUSTER, seed=country.models.seed,
            instructions_note=f"(Coordinator: drop it into {folder}.)",
        )
        for problem in [*missing, *kit.skipped]:
            context.log.warning(problem)
        path = settings.country_dir(country.code) / KIT_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(kit.html, encoding="utf-8")
        return MaterializeResult(metadata={
            "path": MetadataValue.path(str(path.resolve())),
            "clusters": len(kit.clusters),
            "images": int(sum(kit.images_per_cluster.values())),
            "missing_images": len(missing) + len(kit.skipped),
            "size_kb": round(kit.size_bytes / 1024, 1),
            "annotation_folder": MetadataValue.path(str(folder)),
            "preview": image_md(png_bytes(kit.preview, 640), "first samples of each cluster, one row each"),
        })

    return [annotation_kit]


def _simulated(folder) -> list[str]:
    """POG files a simulation wrote (synthetic countries): the run that wrote them re-runs the POGs."""
    manifest = folder / SIMULATED_MANIFEST
    try:
        return [f"{name}.pog" for name in json.loads(manifest.read_text())]
    except (OSError, ValueError):
        return []


def build_annotation_sensor() -> SensorDefinition:
    """The sensor (and its job) that re-materialises a country's POGs when its files change."""
    job = define_asset_job(
        REFRESH_JOB, selection=AssetSelection.assets(*REFRESH_ASSETS),
        description="Re-read one country's annotation folder: per-annotator POGs, their agreement "
        "and the ensemble. Started by the annotation_files_changed sensor.",
    )

    # Running by default: the kit promises "drop the file and the ensemble updates"; a sensor that
    # must first be switched on in the UI would silently do nothing.  It evaluates only while the
    # daemon runs (`make dev`), its first tick records a baseline instead of starting runs, and it
    # only ever runs the three stage-2 assets above for the one country whose files changed.
    @sensor(
        name=SENSOR_NAME, job=job, minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches each country's annotation folder (*.pog, pogs.txt, annotators.txt). "
        "When the files or their contents change, runs annotator_pogs, pog_agreement and "
        "ensemble_pog for that country. A malformed file makes that run fail with file:line:col; "
        "earlier results stay. Waits while another run is in progress (DuckDB has one writer).",
    )
    def annotation_files_changed(context: SensorEvaluationContext, settings: SiscoreSettings):
        registry = settings.registry()
        state = json.loads(context.cursor) if context.cursor else None
        current: dict[str, str | None] = {}
        for code in registry.codes:
            folder = registry.get(code).annotation_folder(settings.root)
            current[code] = kits.folder_fingerprint(folder, ignore=_simulated(folder))
        if state is None:
            seen = sum(v is not None for v in current.values())
            return SensorResult(
                skip_reason=SkipReason(f"baseline recorded for {seen} annotation folder(s); "
                                       "later changes start runs"),
                cursor=json.dumps({"seq": 0, "folders": current}, sort_keys=True))
        before = state.get("folders", {})
        changed = [code for code in registry.codes if current[code] != before.get(code)]
        if not changed:
            return SkipReason("no annotation file changed")
        busy = context.instance.get_runs(RunsFilter(statuses=_ACTIVE), limit=1)
        if busy:  # the cursor is not advanced: the change is picked up once that run is done
            return SkipReason(f"annotation files changed for {', '.join(changed)}; waiting for run "
                              f"{busy[0].run_id} to finish (the warehouse has one writer)")
        seq = int(state.get("seq", 0)) + 1
        requests = []
        for code in changed:
            folder = registry.get(code).annotation_folder(settings.root)
            if current[code] is None:
                context.log.info(f"{code}: no annotation files left in {folder}; nothing to run")
                continue
            try:
                pogs.read_annotation_folder(folder)
            except (pogs.PogError, ValueError, OSError) as exc:
                context.log.warning(f"{code}: {exc} (the run will fail with this until the file is fixed)")
            requests.append(RunRequest(
                run_key=f"{code}:{seq}:{current[code][:12]}", partition_key=code,
                tags={"siscore/trigger": "annotation_files"}))
        return SensorResult(run_requests=requests,
                            cursor=json.dumps({"seq": seq, "folders": current}, sort_keys=True))

    return annotation_files_changed
