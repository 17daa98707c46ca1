"""Orchestration's objects: the two partitioned jobs, the yearly schedule, the follow-up of
yearly runs and the imagery sensor, over the assets the other domains define."""

from __future__ import annotations

from dagster import (
    AssetsDefinition,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from ..common.context import STALE_MODEL_SENSOR
from ..common.partitions import Partitions
from .followup import build_follow_up_sensor
from .jobs import build_jobs
from .schedules import build_yearly_schedule
from .sensors import build_imagery_sensor


def stale_models_sensor(assets: list[AssetsDefinition]) -> AutomationConditionSensorDefinition:
    """The sensor that evaluates the assets' automation conditions (the learned models'
    `STALE_MODEL`)."""
    automated = [s.key for a in assets for s in a.specs if s.automation_condition is not None]
    return AutomationConditionSensorDefinition(
        STALE_MODEL_SENSOR,
        target=AssetSelection.assets(*automated),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="Declarative automation: after a code or countries-file change (reload the "
        "code location), re-trains each country's ensembled POG and scorer that were materialised "
        "before. Switch it off here to re-train by hand.",
    )


def build(p: Partitions, assets: list[AssetsDefinition], countries_file: str | None) -> Definitions:
    yearly = [k for a in assets if a.partitions_def == p.country_year for k in a.keys]
    country = [k for a in assets if a.partitions_def == p.country for k in a.keys]
    jobs = build_jobs(p, country, yearly)
    schedule = build_yearly_schedule(jobs["yearly_refresh"], p, countries_file)
    sensor = build_follow_up_sensor(jobs["yearly_refresh"], jobs["country_models"], p, assets)
    imagery = build_imagery_sensor(jobs["yearly_refresh"], p)
    return Definitions(
        jobs=list(jobs.values()),
        schedules=[schedule],
        sensors=[sensor, imagery, stale_models_sensor(assets)],
    )
