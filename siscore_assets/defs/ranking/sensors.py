"""The sensor that turns an exported ``<name>.pog`` dropped into a country's annotation folder
into a run of that annotator's POG partition, then of the country's ensemble (and their jobs)."""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AddDynamicPartitionsRequest,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    DeleteDynamicPartitionsRequest,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from siscore_assets.core import ranking
from siscore_assets.core.ranking import annotation_kit as kits
from siscore_assets.core.ranking import annotators

from ..common.partitions import (
    ANNOTATORS,
    Partitions,
    annotator_changes,
    country_annotator_key,
    reload_note,
    split_loaded,
)
from ..common.resources import SiscoreSettings
from .assets import expected_annotators

#: One annotator's file changed: re-run its partition of these.
ANNOTATOR_ASSETS = ("annotator_pogs", "annotator_ranks")
ANNOTATOR_JOB = "annotator_refresh"
#: Then, once every annotator run of the change succeeded: these, for the one country.
REFRESH_ASSETS = ("pog_agreement", "ensemble_pog", "annotator_weights")
REFRESH_JOB = "annotation_refresh"
SENSOR_NAME = "annotation_files_changed"
BATCH_TAG = "siscore/annotation_batch"
ACTIVE_RUN_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED_BAD = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def annotator_fingerprints(folder, ignore=()) -> dict[str, str] | None:
    """Per annotator, a content hash of the files its POG comes from; None when the folder has
    no annotation file.  A folder whose names clash gets one entry, ``""``: a change, but nothing
    to run until it is fixed (the sensor logs the file and line)."""
    try:
        files = ranking.annotator_files(folder, ignore=set(ignore))
    except ranking.PogError as exc:
        return {"": hashlib.sha256(str(exc).encode()).hexdigest()}
    return {name: kits.files_fingerprint(paths) for name, paths in files.items()} or None


def build_annotation_sensor(p: Partitions) -> SensorDefinition:
    """The sensor (and its two jobs) that re-materialise a country's POGs when its files change;
    a country the loaded definitions lack (added to the countries file after the code location
    loaded) is left, unrecorded, for after a reload, and the tick says so."""
    loaded = set(p.country.get_partition_keys())
    annotator_job = define_asset_job(
        ANNOTATOR_JOB,
        selection=AssetSelection.assets(*ANNOTATOR_ASSETS),
        description="Parse and store one annotator's POG (partition `country|annotator`). Started "
        "by the annotation_files_changed sensor for each new or edited file.",
    )
    job = define_asset_job(
        REFRESH_JOB,
        selection=AssetSelection.assets(*REFRESH_ASSETS),
        description="One country's agreement matrix and ensembled POG over its annotators' stored "
        "POGs. Started by the annotation_files_changed sensor once every annotator run succeeded.",
    )

    # Running by default: the kit promises "drop the file and the ensemble updates"; a sensor that
    # must first be switched on in the UI would silently do nothing.  It evaluates only while the
    # daemon runs (`make dev`) and its first tick records a baseline instead of starting runs.
    @sensor(
        name=SENSOR_NAME,
        jobs=[annotator_job, job],
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches each country's annotation folder (*.pog, pogs.txt, annotators.txt). "
        "A new annotator gets its own `country|annotator` partition; a new or edited file runs "
        "that partition of annotator_pogs; a removed one retires its partition. When every such "
        "run succeeded, runs pog_agreement and ensemble_pog for that country. A malformed file "
        "makes its annotator's run fail with file:line:col, and the ensemble keeps its earlier "
        "result.",
    )
    def annotation_files_changed(context: SensorEvaluationContext, settings: SiscoreSettings):
        registry = settings.registry()
        state = json.loads(context.cursor) if context.cursor else None
        codes, unloaded = split_loaded(registry.codes, loaded)
        current: dict[str, dict[str, str] | None] = {}
        for code in codes:
            folder = registry.get(code).annotation_folder(settings.root)
            current[code] = annotator_fingerprints(
                folder, ignore=annotators.simulated_files(folder)
            )
        # Every tick: each country's annotator partitions are the annotators it has now.
        added: list[str] = []
        removed: list[str] = []
        for code in codes:
            try:
                names = expected_annotators(settings.root, registry.get(code))
            except (ranking.PogError, ValueError) as exc:  # its annotation_inputs run names it
                context.log.warning(f"{code}: annotator partitions not updated: {exc}")
                continue
            add, drop = annotator_changes(context.instance, code, names)
            added += add
            removed += drop
        partition_requests = ([AddDynamicPartitionsRequest(ANNOTATORS, added)] if added else []) + (
            [DeleteDynamicPartitionsRequest(ANNOTATORS, removed)] if removed else []
        )
        if state is None:
            seen = sum(v is not None for v in current.values())
            return SensorResult(
                skip_reason=SkipReason(
                    f"baseline recorded for {seen} annotation folder(s), "
                    f"{len(added)} annotator partition(s) registered; later changes start runs"
                ),
                dynamic_partitions_requests=partition_requests,
                cursor=json.dumps({"seq": 0, "folders": current, "pending": {}}, sort_keys=True),
            )
        seq = int(state.get("seq", 0))
        # country -> [batch tag, number of annotator runs the batch requested]
        pending: dict[str, list] = dict(state.get("pending", {}))
        requests: list[RunRequest] = []
        notes: list[str] = []
        if unloaded:
            notes.append(reload_note("annotation folders", unloaded, "not watched yet"))
            context.log.warning(notes[-1])
        for code, (batch, expected) in sorted(
            pending.items()
        ):  # the ensemble follows its annotators' runs
            runs = context.instance.get_runs(RunsFilter(tags={BATCH_TAG: batch}))
            if len(runs) < expected or any(r.status in ACTIVE_RUN_STATUSES for r in runs):
                notes.append(f"{code}: waiting for the annotator runs of {batch}")
                continue
            del pending[code]
            bad = [r.run_id for r in runs if r.status in FINISHED_BAD]
            if bad:
                context.log.warning(
                    f"{code}: annotator run(s) {', '.join(bad)} failed; the ensemble keeps "
                    "its earlier result until the file is fixed"
                )
                notes.append(f"{code}: annotator runs failed ({', '.join(bad)})")
                continue
            requests.append(
                RunRequest(
                    run_key=f"{batch}:ensemble",
                    job_name=REFRESH_JOB,
                    partition_key=code,
                    tags={"siscore/trigger": "annotation_files"},
                )
            )
        before = state.get("folders", {})
        changed = [code for code in codes if current[code] != before.get(code)]
        if changed:
            busy = context.instance.get_runs(RunsFilter(statuses=ACTIVE_RUN_STATUSES), limit=1)
            if (
                busy and not requests
            ):  # the folders are not advanced: picked up once that run is done
                return SensorResult(
                    skip_reason=SkipReason(
                        f"annotation files changed for {', '.join(changed)}; waiting for run "
                        f"{busy[0].run_id} to finish"
                    ),
                    dynamic_partitions_requests=partition_requests,
                    cursor=json.dumps(
                        {"seq": seq, "folders": before, "pending": pending}, sort_keys=True
                    ),
                )
            if busy:
                changed = []
        folders = dict(before)
        for code in changed:
            folders[code] = current[code]
            files, old = current[code] or {}, before.get(code)
            old = old if isinstance(old, dict) else {}  # none yet, or an older cursor's folder hash
            if (
                "" in files
            ):  # names clash: logged above with the file and line; nothing to run until fixed
                continue
            names = [n for n in files if n]
            dropped = any(k.startswith(code + "|") for k in removed) or any(
                n not in files for n in old
            )
            touched = [n for n in names if files[n] != old.get(n)]
            seq += 1
            batch = f"{code}:{seq}"
            requests += [
                RunRequest(
                    run_key=f"{batch}:{n}:{files[n][:12]}",
                    job_name=ANNOTATOR_JOB,
                    partition_key=country_annotator_key(code, n),
                    tags={BATCH_TAG: batch, "siscore/trigger": "annotation_files"},
                )
                for n in touched
            ]
            if touched:
                pending[code] = [batch, len(touched)]
            elif names and dropped:  # only removals: the ensemble re-runs right away
                requests.append(
                    RunRequest(
                        run_key=f"{batch}:ensemble",
                        job_name=REFRESH_JOB,
                        partition_key=code,
                        tags={"siscore/trigger": "annotation_files"},
                    )
                )
            elif not names:
                context.log.info(
                    f"{code}: no annotation files left; its annotator partitions are retired"
                )
        cursor = json.dumps({"seq": seq, "folders": folders, "pending": pending}, sort_keys=True)
        if not requests and not partition_requests:
            return SensorResult(
                skip_reason=SkipReason("; ".join(notes) or "no annotation file changed"),
                cursor=cursor,
            )
        return SensorResult(
            run_requests=requests, dynamic_partitions_requests=partition_requests, cursor=cursor
        )

    return annotation_files_changed
