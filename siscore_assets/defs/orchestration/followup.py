"""The follow-up of a yearly run: after any successful `yearly_refresh` run (the schedule's, the
imagery sensor's, one launched by hand), every scored year's `siscore_grid` and everything that
reads the scores, yearly and country-level, wave after wave.

Why every year: each year's scores read every configured year (``scope.py``), so a new or
re-read year moves them all a little, and the change maps, the regression and the map read
several years at once.  The waves are those of ``siscore run`` over the score readers
(``runner.plan_asset_waves``): a yearly wave is one run per scored year, a country wave one
run; the sensor requests the next wave once every run of the previous one has succeeded,
counting them by tags.  Runs requested together (the schedule's years of one tick) are wave 0
of one follow-up, so their follow-up starts once, after the last of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorDefinition,
    SkipReason,
    run_status_sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG

from ..common.partitions import (
    COUNTRY,
    SEPARATOR,
    YEARLY,
    Partitions,
    country_year_key,
    partition_kind,
)
from .runner import Wave, plan_asset_waves
from .scope import YEARLY_SCORES, ancestors, score_readers, scored_years

SENSOR_NAME = "yearly_refresh_dependents"
#: The follow-up a run belongs to (the run id it follows, or a tick's group name).
FOLLOW_UP_TAG = "siscore/follow_up"
#: Its wave (0: the yearly runs the follow-up waits for) and how many runs that wave has.
WAVE_TAG = "siscore/follow_up_wave"
RUNS_TAG = "siscore/follow_up_runs"
TRIGGER_TAG = "siscore/trigger"
FINISHED_BAD = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


@dataclass(frozen=True)
class FollowUp:
    """The follow-up's waves, and the yearly assets whose run moves the scores."""

    waves: tuple[Wave, ...]
    moves_scores: frozenset[AssetKey]

    @property
    def names(self) -> list[str]:
        return [n for w in self.waves for n in w.names]


def plan_follow_up(assets: Sequence[AssetsDefinition]) -> FollowUp:
    """The waves over `siscore_grid` and every asset reading it (annotator partitions aside)."""
    readers = score_readers(assets)
    keep = {
        k
        for a in assets
        if isinstance(a, AssetsDefinition) and a.partitions_def is not None
        for k in a.keys
        if k in readers and partition_kind(a) in (YEARLY, COUNTRY)
    }
    waves = tuple(plan_asset_waves(list(assets), keep))
    yearly = {
        k
        for a in assets
        if isinstance(a, AssetsDefinition) and partition_kind(a) == YEARLY
        for k in a.keys
    }
    moves = (ancestors(assets) | {YEARLY_SCORES}) & yearly
    return FollowUp(waves, frozenset(moves))


def group_tags(group: str, runs: int) -> dict[str, str]:
    """Tags of ``runs`` yearly runs requested together (wave 0 of the follow-up ``group``)."""
    return {FOLLOW_UP_TAG: group, WAVE_TAG: "0", RUNS_TAG: str(runs)}


def wave_requests(
    plan: FollowUp,
    p: Partitions,
    instance: DagsterInstance,
    origin: str,
    code: str,
    number: int,
    jobs: dict[str, str],
) -> list[RunRequest] | SkipReason:
    """The runs of wave ``number`` (1-based) of the follow-up ``origin`` for ``code``: a yearly
    wave's over the years with scores (a wave with none is passed over)."""
    while number <= len(plan.waves):
        wave = plan.waves[number - 1]
        if wave.kind == YEARLY:
            years = scored_years(instance, code, p.years_of.get(code, ()))
            keys = [country_year_key(code, y) for y in years]
        else:
            keys = [code]
        if keys:
            tags = {
                FOLLOW_UP_TAG: origin,
                WAVE_TAG: str(number),
                RUNS_TAG: str(len(keys)),
                TRIGGER_TAG: "follow_up",
            }
            return [
                RunRequest(
                    run_key=f"follow-up:{origin}:{number}:{key}",
                    job_name=jobs[wave.kind],
                    partition_key=key,
                    asset_selection=list(wave.keys),
                    tags=tags,
                )
                for key in keys
            ]
        number += 1
    return SkipReason(f"follow-up of {origin} done")


def wave_state(instance: DagsterInstance, origin: str, number: int, expected: int) -> str | None:
    """None once every run of the wave has succeeded (each partition's latest run), else why
    the follow-up waits or stopped."""
    runs = instance.get_runs(
        filters=RunsFilter(tags={FOLLOW_UP_TAG: origin, WAVE_TAG: str(number)})
    )
    latest: dict[str, DagsterRun] = {}
    for run in runs:  # newest first: a re-executed run replaces its failed one
        latest.setdefault(run.tags.get(PARTITION_NAME_TAG, run.run_id), run)
    bad = [r.run_id for r in latest.values() if r.status in FINISHED_BAD]
    if bad:
        return f"follow-up of {origin} stopped: run(s) {', '.join(bad)} of wave {number} failed"
    ok = sum(r.status == DagsterRunStatus.SUCCESS for r in latest.values())
    if ok < expected:
        return f"follow-up of {origin}: wave {number} has {ok}/{expected} runs done"
    return None


def follow_up(
    plan: FollowUp, p: Partitions, run: DagsterRun, instance: DagsterInstance, jobs: dict[str, str]
) -> list[RunRequest] | SkipReason:
    """What the success of ``run`` starts: the next wave of its follow-up, or for any other
    successful yearly run, the first wave of a new one."""
    tags = run.tags
    partition = tags.get(PARTITION_NAME_TAG)
    if not partition:
        return SkipReason(f"run {run.run_id} has no partition")
    code = partition.partition(SEPARATOR)[0]
    origin = tags.get(FOLLOW_UP_TAG)
    if origin is None:
        if run.job_name != jobs[YEARLY]:
            return SkipReason(f"run {run.run_id} is not a yearly run nor part of a follow-up")
        if BACKFILL_ID_TAG in tags:
            return SkipReason(
                f"run {run.run_id} is part of backfill {tags[BACKFILL_ID_TAG]}: once it ends, "
                f"materialise {', '.join(plan.names)} for {code} (or `siscore run --years`)"
            )
        selected = set(run.asset_selection or ()) or None
        if selected is not None and not selected & plan.moves_scores:
            return SkipReason(f"run {run.run_id} changed nothing the scores are computed from")
        return wave_requests(plan, p, instance, run.run_id, code, 1, jobs)
    number = int(tags.get(WAVE_TAG, "0"))
    waiting = wave_state(instance, origin, number, int(tags.get(RUNS_TAG, "1")))
    if waiting:
        return SkipReason(waiting)
    return wave_requests(plan, p, instance, origin, code, number + 1, jobs)


def build_follow_up_sensor(
    yearly_job: UnresolvedAssetJobDefinition,
    country_job: UnresolvedAssetJobDefinition,
    p: Partitions,
    assets: Sequence[AssetsDefinition],
) -> SensorDefinition:
    """After any successful yearly run: every scored year's scores and their readers."""
    plan = plan_follow_up(assets)
    jobs = {YEARLY: yearly_job.name, COUNTRY: country_job.name}

    @run_status_sensor(
        name=SENSOR_NAME,
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[yearly_job, country_job],
        request_jobs=[yearly_job, country_job],
        default_status=DefaultSensorStatus.RUNNING,
        description="After any successful yearly_refresh run (the schedule's, the imagery "
        "sensor's, one launched by hand) of a country-year: re-materialise, for every year of "
        "that country that has scores, wave after wave, the scores and what reads them "
        f"({', '.join(plan.names)}): every year's scores read every year's imagery.",
    )
    def yearly_refresh_dependents(context: RunStatusSensorContext):
        return follow_up(plan, p, context.dagster_run, context.instance, jobs)

    return yearly_refresh_dependents
