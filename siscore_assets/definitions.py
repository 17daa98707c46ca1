"""The one Definitions object: every domain's definitions merged, plus the shared resources."""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from siscore_assets.core.countries import CountryRegistry, load_countries
from siscore_assets.defs.clusters import definitions as clusters
from siscore_assets.defs.common.partitions import make_partitions
from siscore_assets.defs.common.resources import SiscoreSettings, Warehouse
from siscore_assets.defs.ingest import definitions as ingest
from siscore_assets.defs.orchestration import definitions as orchestration
from siscore_assets.defs.outputs import definitions as outputs
from siscore_assets.defs.ranking import definitions as ranking
from siscore_assets.defs.scoring import definitions as scoring

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
    domains = [ingest.build(parts), clusters.build(parts, registry), ranking.build(parts, registry),
               scoring.build(parts, registry), outputs.build(parts)]
    assets = [a for d in domains for a in (d.assets or [])]
    root = data_root or os.environ.get("SISCORE_DATA_ROOT", DEFAULT_DATA_ROOT)
    database = warehouse_path or os.environ.get("SISCORE_WAREHOUSE") or f"{root}/warehouse.duckdb"
    return Definitions.merge(
        *domains,
        orchestration.build(parts, assets, countries_file),
        Definitions(
            resources={"settings": SiscoreSettings(data_root=root, countries_file=countries_file),
                       "warehouse": Warehouse(database=database)},
            # DuckDB allows one writer per file: steps run in one process, one after another.
            executor=in_process_executor,
        ),
    )


defs = build_definitions()
