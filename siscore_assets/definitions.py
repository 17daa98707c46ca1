"""The one Definitions object: every stage's assets, the resources, jobs and the yearly schedule."""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from siscore_assets.core.countries import CountryRegistry, load_countries
from siscore_assets.defs.ingest import assets as ingest
from siscore_assets.defs.ingest import imports as ingest_imports
from siscore_assets.defs.orchestration.jobs import build_jobs
from siscore_assets.defs.orchestration.schedules import build_yearly_schedule
from siscore_assets.defs.outputs import analysis as outputs_analysis
from siscore_assets.defs.outputs import maps as outputs_maps
from siscore_assets.defs.partitions import make_partitions
from siscore_assets.defs.resources import SiscoreSettings, Warehouse
from siscore_assets.defs.stage1 import assets as stage1
from siscore_assets.defs.stage2 import assets as stage2
from siscore_assets.defs.stage2 import kit as stage2_kit
from siscore_assets.defs.stage3 import assets as stage3

DEFAULT_DATA_ROOT = "data"


def build_definitions(
    registry: CountryRegistry | None = None,
    *,
    data_root: str | None = None,
    countries_file: str | None = None,
    warehouse_path: str | None = None,
) -> Definitions:
    """Build the platform for a countries registry (tests pass their own tiny one)."""
    countries_file = countries_file or os.environ.get("SISCORE_COUNTRIES")
    registry = registry or load_countries(countries_file)
    parts = make_partitions(registry)
    assets = [*ingest.build(parts), *ingest_imports.build(parts), *stage1.build(parts),
              *stage2.build(parts), *stage2_kit.build(parts), *stage3.build(parts),
              *outputs_maps.build(parts), *outputs_analysis.build(parts)]
    yearly = [a.key.to_user_string() for a in assets if a.partitions_def == parts.country_year]
    country = [a.key.to_user_string() for a in assets if a.partitions_def == parts.country]
    jobs = build_jobs(parts, country, yearly)
    root = data_root or os.environ.get("SISCORE_DATA_ROOT", DEFAULT_DATA_ROOT)
    settings = SiscoreSettings(data_root=root, countries_file=countries_file)
    database = warehouse_path or os.environ.get("SISCORE_WAREHOUSE") or f"{root}/warehouse.duckdb"
    return Definitions(
        assets=assets,
        jobs=list(jobs.values()),
        schedules=[build_yearly_schedule(jobs["yearly_refresh"], countries_file)],
        sensors=[stage2_kit.build_annotation_sensor()],  # its job, annotation_refresh, comes with it
        resources={"settings": settings, "warehouse": Warehouse(database=database)},
        # DuckDB allows one writer per file: steps run in one process, one after another.
        executor=in_process_executor,
    )


defs = build_definitions()
