"""The one Definitions object: every domain's definitions merged, plus the shared resources."""

from __future__ import annotations

import os

from dagster import (
    AssetKey,
    AssetSelection,
    Definitions,
    JobDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

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
# Steps run in parallel processes.  forkserver: the step processes fork from one server that has
# imported this module (torch, Dagster, the assets) once, instead of each spawning a fresh Python.
EXECUTOR = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["siscore_assets.definitions"]}}},
    name="siscore_multiprocess",
)
WAVE_JOB = "siscore_run_wave"
ENV_EXECUTOR = "SISCORE_EXECUTOR"


def executor_for(kind: str | None = None):
    """The executor named by $SISCORE_EXECUTOR: ``multiprocess`` (default, local), ``in_process``
    (one process, step after step), ``celery`` or ``k8s`` (packages of the ``deploy`` extra;
    their config is the run config in deploy/)."""
    kind = kind or os.environ.get(ENV_EXECUTOR) or "multiprocess"
    if kind == "multiprocess":
        return EXECUTOR
    if kind == "in_process":
        return in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise ValueError(f"${ENV_EXECUTOR}={kind!r}: expected multiprocess, in_process, celery or k8s")


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
    domains = [
        ingest.build(parts),
        clusters.build(parts, registry),
        ranking.build(parts, registry),
        scoring.build(parts, registry),
        outputs.build(parts),
    ]
    assets = [a for d in domains for a in (d.assets or [])]
    root = data_root or os.environ.get("SISCORE_DATA_ROOT", DEFAULT_DATA_ROOT)
    database = warehouse_path or os.environ.get("SISCORE_WAREHOUSE") or f"{root}/warehouse.duckdb"
    return Definitions.merge(
        *domains,
        orchestration.build(parts, assets, countries_file),
        Definitions(
            resources={
                "settings": SiscoreSettings(data_root=root, countries_file=countries_file),
                "warehouse": Warehouse(database=database),
            },
            executor=executor_for(),
        ),
    )


def wave_job(
    names: list[str],
    countries_file: str | None = None,
    data_root: str | None = None,
    warehouse_path: str | None = None,
    executor: str | None = None,
) -> JobDefinition:
    """One wave of ``siscore run`` as a job over the platform built from these arguments.

    ``siscore run`` executes it through ``build_reconstructable_job`` so that every step process
    of the multiprocess executor rebuilds the same job from the same (plain, picklable) arguments.
    ``executor`` names the job's executor (see :func:`executor_for`; default the platform's).
    """
    defs = build_definitions(
        None, data_root=data_root, countries_file=countries_file, warehouse_path=warehouse_path
    )
    job = define_asset_job(
        WAVE_JOB,
        selection=AssetSelection.assets(*map(AssetKey, names)),
        executor_def=executor_for(executor) if executor else None,
    )
    return Definitions.merge(defs, Definitions(jobs=[job])).resolve_job_def(WAVE_JOB)


defs = build_definitions()
