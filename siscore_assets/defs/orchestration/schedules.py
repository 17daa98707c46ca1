"""The yearly refresh: each January the schedule requests, for every country with open-ended
years (``years: {from: 2016}``), the year that has just ended (the last complete year: a STAC
search of the whole calendar year then finds a whole year of scenes, a tile folder has been
delivered), and every earlier configured year of that country that was never scored (a tick
that was skipped, a run that failed: caught up at the next tick).  When those runs succeed, the
follow-up sensor (``followup.py``) refreshes every year's scores and what reads them.

Why open-ended static partitions rather than dynamic ones: every cross-partition read is a
``StaticPartitionMapping`` built from the years (the previous and the base year of change maps,
a country reading all its years), so the years must be known when the definitions load.  They
are: an open-ended country's years run up to the current year at load, so the year a tick asks
for is loaded unless the code location is older than that year; then the tick skips with a
message saying to reload it instead of failing.
"""

from __future__ import annotations

from datetime import date, datetime

from dagster import (
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from siscore_assets.core.countries import load_countries

from ..common.partitions import Partitions, country_year_key, split_loaded
from .followup import TRIGGER_TAG, group_tags
from .scope import YEARLY_SCORES, materialised

SCHEDULE_NAME = "yearly_siscore_refresh"
TRIGGER = "yearly_schedule"


def refresh_years(
    countries_file: str | None, when: datetime, scored: set[str] = frozenset()
) -> dict[str, list[int]]:
    """Per open-ended country: its last complete year at ``when`` (``when.year - 1``) when
    configured, and every configured year before it whose scores (``scored``: the
    `siscore_grid` partitions materialised) do not exist yet."""
    now = load_countries(countries_file, today=when.date())
    later = load_countries(countries_file, today=date(when.year + 1, 12, 31))
    last = when.year - 1
    out = {}
    for code in now.codes:
        if later.get(code).years == now.get(code).years:
            continue  # a fixed list of years (or an end year): the schedule leaves it alone
        years = [
            y
            for y in now.get(code).years
            if y == last or (y < last and country_year_key(code, y) not in scored)
        ]
        if years:
            out[code] = years
    return out


def refresh_requests(
    p: Partitions, countries_file: str | None, when: datetime, scored: set[str] = frozenset()
) -> tuple[list[RunRequest], list[str]]:
    """The run requests of the tick at ``when`` (one follow-up group per country: the
    follow-up starts after the last of them), and the country-years that the loaded partitions
    do not have (the code location must be reloaded for those)."""
    known = set(p.country_year.get_partition_keys())
    requests: list[RunRequest] = []
    missing: list[str] = []
    for code, years in refresh_years(countries_file, when, scored).items():
        keys, lacking = split_loaded((country_year_key(code, y) for y in years), known)
        missing += lacking
        group = group_tags(f"{code}@{when:%Y-%m-%d}", len(keys))
        requests += [
            RunRequest(
                run_key=f"{key}@{when:%Y-%m-%d}",
                partition_key=key,
                tags={TRIGGER_TAG: TRIGGER, **group},
            )
            for key in keys
        ]
    return requests, missing


def build_yearly_schedule(job, p: Partitions, countries_file: str | None) -> ScheduleDefinition:
    """The schedule of the yearly job (its follow-up is ``followup.build_follow_up_sensor``)."""

    @schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule="0 3 15 1 *",
        execution_timezone="UTC",
        description="Each January: for every country with open-ended years (years: {from: YEAR}), "
        "materialise the year that has just ended (granules -> siScore -> rasters, change maps, "
        "validation) and every earlier configured year never scored (catch-up); then the "
        "follow-up sensor refreshes every year's scores and what reads them. Countries with a "
        "fixed list of years get nothing.",
    )
    def yearly_siscore_refresh(context: ScheduleEvaluationContext):
        when = context.scheduled_execution_time
        scored = materialised(context.instance, YEARLY_SCORES)
        requests, missing = refresh_requests(p, countries_file, when, scored)
        if missing:
            context.log.warning(
                f"partitions {', '.join(missing)} are not loaded yet: reload the code "
                "location (the open-ended years end at the year it was loaded)"
            )
        if requests:
            return requests
        if missing:
            return SkipReason(
                f"years {', '.join(missing)} are not in the loaded partitions: "
                "reload the code location, then run this tick again"
            )
        return SkipReason(
            f"no open-ended country has a year to refresh at {when:%Y-%m-%d} "
            "(only open-ended years grow)"
        )

    return yearly_siscore_refresh
