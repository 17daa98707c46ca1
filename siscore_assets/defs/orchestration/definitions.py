"""Orchestration's objects: the two partitioned jobs and the yearly schedule, over the assets
the other domains define."""

from __future__ import annotations

from dagster import AssetsDefinition, Definitions

from ..common.partitions import Partitions
from .jobs import build_jobs
from .schedules import build_yearly_schedule


def build(p: Partitions, assets: list[AssetsDefinition], countries_file: str | None) -> Definitions:
    yearly = [k for a in assets if a.partitions_def == p.country_year for k in a.keys]
    country = [k for a in assets if a.partitions_def == p.country for k in a.keys]
    jobs = build_jobs(p, country, yearly)
    return Definitions(jobs=list(jobs.values()),
                       schedules=[build_yearly_schedule(jobs["yearly_refresh"], countries_file)])
