"""The sensor that turns an exported ``<name>.pog`` dropped into a country's annotation folder
into a re-run of that country's POG assets (and the job it starts)."""

from __future__ import annotations

import json

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
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

from ..common.resources import SiscoreSettings

# What an annotation file changes: re-run exactly these, for the one country whose folder changed.
REFRESH_ASSETS = ("annotator_pogs", "annotator_ranks", "pog_agreement", "ensemble_pog", "annotator_weights")
REFRESH_JOB = "annotation_refresh"
SENSOR_NAME = "annotation_files_changed"
ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


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
        "When the files or their contents change, runs the POG assets "
        "(annotator_pogs, pog_agreement, ensemble_pog and their tables) for that country. A malformed file makes that run fail with file:line:col; "
        "earlier results stay. Waits while another run is in progress (DuckDB has one writer).",
    )
    def annotation_files_changed(context: SensorEvaluationContext, settings: SiscoreSettings):
        registry = settings.registry()
        state = json.loads(context.cursor) if context.cursor else None
        current: dict[str, str | None] = {}
        for code in registry.codes:
            folder = registry.get(code).annotation_folder(settings.root)
            current[code] = kits.folder_fingerprint(folder, ignore=annotators.simulated_files(folder))
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
        busy = context.instance.get_runs(RunsFilter(statuses=ACTIVE_RUN_STATUSES), limit=1)
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
                ranking.read_annotation_folder(folder)
            except (ranking.PogError, ValueError, OSError) as exc:
                context.log.warning(f"{code}: {exc} (the run will fail with this until the file is fixed)")
            requests.append(RunRequest(
                run_key=f"{code}:{seq}:{current[code][:12]}", partition_key=code,
                tags={"siscore/trigger": "annotation_files"}))
        return SensorResult(run_requests=requests,
                            cursor=json.dumps({"seq": seq, "folders": current}, sort_keys=True))

    return annotation_files_changed
