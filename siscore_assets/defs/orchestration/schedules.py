"""The yearly refresh: each January the schedule finds the year that the clock has added to a
country with open-ended years (``years: {from: 2016}``) and requests exactly that year's
partition; when that run succeeds, a run-status sensor requests the country-level assets that
read the new year (the regression, Grad-CAM) for that country.  Two steps because one run cannot
mix ``country`` and ``country|year`` partitions, and the country run must start after the yearly
one has written the new year.

Why open-ended static partitions rather than dynamic ones: every cross-partition read is a
``StaticPartitionMapping`` built from the years (the previous and the base year of change maps,
a country reading all its years), so the years must be known when the definitions load.  They
are: an open-ended country's years run up to the current year at load, so a code location loaded
in the new year has the new partition; one loaded before it (a server up since December) does
not, and the schedule then skips with a message saying to reload it instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SkipReason,
    run_status_sensor,
    schedule,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG

from siscore_assets.core.countries import CountryRegistry, load_countries

from ..common.partitions import Partitions, country_year_key, split_country_year

SCHEDULE_NAME = "yearly_siscore_refresh"
SENSOR_NAME = "yearly_refresh_dependents"
TRIGGER_TAG = "siscore/trigger"
TRIGGER = "yearly_schedule"


def new_years(countries_file: str | None, when: datetime) -> dict[str, list[int]]:
    """The years each country gains at ``when`` compared with a year earlier (only open-ended
    countries gain any)."""
    now = load_countries(countries_file, today=when.date())
    before: CountryRegistry = load_countries(countries_file, today=date(when.year - 1, 12, 31))
    gained = {}
    for code in now.codes:
        old = set(before.get(code).years) if code in before.countries else set()
        added = sorted(set(now.get(code).years) - old)
        if added:
            gained[code] = added
    return gained


def refresh_requests(
    p: Partitions, countries_file: str | None, when: datetime
) -> tuple[list[RunRequest], list[str]]:
    """The run requests of the tick at ``when``, and the country-years that the loaded
    partitions do not have yet (the code location must be reloaded for those)."""
    known = set(p.country_year.get_partition_keys())
    requests: list[RunRequest] = []
    missing: list[str] = []
    for code, years in new_years(countries_file, when).items():
        for key in (country_year_key(code, y) for y in years):
            if key not in known:
                missing.append(key)
                continue
            requests.append(
                RunRequest(
                    run_key=f"{key}@{when:%Y-%m-%d}", partition_key=key, tags={TRIGGER_TAG: TRIGGER}
                )
            )
    return requests, missing


def build_yearly_schedule(job, p: Partitions, countries_file: str | None) -> ScheduleDefinition:
    """The schedule of the yearly job (its country-level follow-up is
    :func:`build_dependents_sensor`)."""

    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule="0 3 15 1 *",
        execution_timezone="UTC",
        description="Each January: for every country with open-ended years (years: {from: YEAR}), "
        "materialise the year the clock added (granules -> siScore -> rasters, change maps, "
        "validation), then the country-level assets that read it (regression). Earlier partitions "
        "are left untouched; countries with a fixed list of years get nothing.",
    )
    def yearly_siscore_refresh(context: ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        requests, missing = refresh_requests(p, countries_file, when)
        if missing:
            context.log.warning(
                f"partitions {', '.join(missing)} are not loaded yet: reload the code "
                "location (the open-ended years end at the year it was loaded)"
            )
        if requests:
            return requests
        if missing:
            return SkipReason(
                f"new years {', '.join(missing)} are not in the loaded partitions: "
                "reload the code location, then run this tick again"
            )
        return SkipReason(
            f"no country gained a year at {when:%Y-%m-%d} (only open-ended years grow)"
        )

    return yearly_siscore_refresh


def dependents_request(
    run_tags: dict, partition: str | None, run_id: str, country_assets: Sequence[AssetKey]
) -> RunRequest | None:
    """The country-level follow-up of one succeeded yearly run started by the schedule."""
    if run_tags.get(TRIGGER_TAG) != TRIGGER or not partition or not country_assets:
        return None
    code, _ = split_country_year(partition)
    return RunRequest(
        run_key=f"dependents-of-{run_id}",
        partition_key=code,
        asset_selection=list(country_assets),
        tags={TRIGGER_TAG: TRIGGER},
    )


def build_dependents_sensor(
    yearly_job, country_job, country_assets: Sequence[AssetKey]
) -> SensorDefinition:
    """After the schedule's yearly run of a new year succeeds: the country's ``country_assets``."""

    @run_status_sensor(
        name=SENSOR_NAME,
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[yearly_job],
        request_job=country_job,
        default_status=DefaultSensorStatus.RUNNING,
        description="When the yearly schedule's run of a new year succeeds, re-run the "
        "country-level assets that read it "
        f"({', '.join(k.to_user_string() for k in country_assets)}) for that country.",
    )
    def yearly_refresh_dependents(context: RunStatusSensorContext):
        run = context.dagster_run
        request = dependents_request(
            dict(run.tags), run.tags.get(PARTITION_NAME_TAG), run.run_id, country_assets
        )
        return request or SkipReason(f"run {run.run_id} was not started by the yearly schedule")

    return yearly_refresh_dependents
