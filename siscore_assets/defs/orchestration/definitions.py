"""Orchestration's objects: the two partitioned jobs and the yearly schedule, over the assets
the other domains define."""

from __future__ import annotations

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
)

from ..common.context import STALE_MODEL_SENSOR
from ..common.partitions import Partitions
from .jobs import build_jobs
from .schedules import build_dependents_sensor, build_yearly_schedule
from .sensors import build_imagery_sensor

# The yearly product: the country-level assets downstream of it are what a new year changes.
YEARLY_SCORES = AssetKey("siscore_grid")


def country_dependents(
    p: Partitions, assets: list[AssetsDefinition], of: AssetKey = YEARLY_SCORES
) -> list[AssetKey]:
    """Country-level assets that read ``of`` directly or through other assets (the regression),
    sorted by name; the learned models upstream of the scores are not among them."""
    by_key = {k: a for a in assets for k in a.keys}
    reached: set[AssetKey] = {of}
    grew = True
    while grew:
        grew = False
        for a in assets:
            for spec in a.specs:
                if spec.key not in reached and any(d.asset_key in reached for d in spec.deps):
                    reached.add(spec.key)
                    grew = True
    return sorted(
        (k for k in by_key if k in reached and by_key[k].partitions_def == p.country),
        key=lambda k: k.to_user_string(),
    )


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
    sensor = build_dependents_sensor(
        jobs["yearly_refresh"], jobs["country_models"], country_dependents(p, assets)
    )
    imagery = build_imagery_sensor(jobs["yearly_refresh"])
    return Definitions(
        jobs=list(jobs.values()),
        schedules=[schedule],
        sensors=[sensor, imagery, stale_models_sensor(assets)],
    )
