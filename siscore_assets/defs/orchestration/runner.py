"""Materialise a whole country in dependency order, as one would by hand in the UI.

A single Dagster run cannot mix ``country`` and ``country x year`` partitions, so the graph is run
as five waves: country inputs, yearly ingest, country learning, yearly scoring and outputs, and
the country regression.  Runs are recorded in the Dagster instance, so they show in the UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance, Definitions, materialize

from ..partitions import country_year_key

# The terminal shows warnings and failures (e.g. each tile reported cloudy or corrupt); the
# step-by-step DEBUG events stay in Dagster's event log, visible in `make dev`.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

WAVES: list[tuple[str, list[str]]] = [
    ("country", ["pretrain_set", "habitation_model", "districts", "covariates"]),
    ("yearly", ["granules", "patches", "proxies", "habitation"]),
    ("country", ["clusters", "annotation_kit", "annotation_inputs", "guided_pogs", "annotator_pogs", "pog_agreement", "ensemble_pog", "scorer",
                 "imported_scores", "imported_proxies", "baseline_scores"]),
    ("yearly", ["siscore_grid", "siscore_raster", "siscore_change", "siscore_mosaic", "district_siscore",
                "validation_grid", "validation_district"]),
    ("country", ["development_regression", "scorer_gradcam"]),
]


@dataclass
class RunReport:
    country: str
    years: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)


def materialize_country(
    defs: Definitions,
    country: str,
    years: Sequence[int],
    *,
    instance: DagsterInstance | None = None,
    log: Callable[[str], None] = print,
) -> RunReport:
    """Run every asset for ``country`` over ``years``; raises on the first failed run."""
    instance = instance or DagsterInstance.ephemeral()
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    report = RunReport(country, list(years))
    for wave, (kind, names) in enumerate(WAVES, start=1):
        keys = [AssetKey(n) for n in names]
        partitions = [country] if kind == "country" else [country_year_key(country, y) for y in years]
        for key in partitions:
            label = f"wave {wave} {kind} {key}"
            t0 = time.perf_counter()
            result = materialize(assets, selection=keys, partition_key=str(key) if kind == "country" else key,
                                 resources=resources, instance=instance, raise_on_error=True,
                                 tags={"siscore/wave": str(wave)}, run_config=QUIET_CONSOLE)
            dt = time.perf_counter() - t0
            report.run_ids.append(result.run_id)
            stats = [s for s in instance.get_run_step_stats(result.run_id) if s.start_time and s.end_time]
            for stat in stats:
                report.seconds[stat.step_key] = report.seconds.get(stat.step_key, 0.0) + stat.end_time - stat.start_time
            overhead = dt - sum(s.end_time - s.start_time for s in stats)
            report.seconds["dagster_overhead"] = report.seconds.get("dagster_overhead", 0.0) + overhead
            log(f"  {label}: {', '.join(names)} ({dt:.1f} s)")
    return report
