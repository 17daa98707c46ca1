"""The yearly refresh: each January, score every country's latest configured year."""

from __future__ import annotations

from dagster import RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from siscore_assets.core.countries import load_countries

from ..common.partitions import country_year_key


def build_yearly_schedule(job, countries_file: str | None) -> ScheduleDefinition:
    @schedule(
        job=job, cron_schedule="0 3 15 1 *", execution_timezone="UTC",
        description="Refresh each country's latest configured year (add the year to the countries "
        "file first). Earlier partitions are left untouched.",
    )
    def yearly_siscore_refresh(context: ScheduleEvaluationContext):
        registry = load_countries(countries_file)
        for code in registry.codes:
            year = registry.get(code).years[-1]
            yield RunRequest(run_key=f"{code}-{year}-{context.scheduled_execution_time:%Y}",
                             partition_key=country_year_key(code, year))

    return yearly_siscore_refresh
