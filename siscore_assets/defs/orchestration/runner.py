"""Materialise a whole country in dependency order, as one would by hand in the UI.

A single Dagster run cannot mix ``country`` and ``country|year`` partitions, so the graph is run
in waves, each the largest set of assets of one partitioning whose every declared dependency is
already done.  The waves are derived from the asset graph itself (:func:`plan_waves`), so an
asset can never run before what it reads.  Runs are recorded in the Dagster instance, so they
show in the UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, AssetsDefinition, DagsterInstance, Definitions, materialize

from ..common.partitions import SEPARATOR, country_year_key

# The terminal shows warnings and failures; the step-by-step DEBUG events stay in Dagster's
# event log, visible in `make dev`.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
COUNTRY, YEARLY = "country", "yearly"


@dataclass(frozen=True)
class Wave:
    kind: str  # "country" or "yearly"
    keys: tuple[AssetKey, ...]

    @property
    def names(self) -> list[str]:
        return [k.to_user_string() for k in self.keys]


@dataclass
class RunReport:
    country: str
    years: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)


def _kind(asset: AssetsDefinition) -> str:
    keys = asset.partitions_def.get_partition_keys() if asset.partitions_def else []
    return YEARLY if keys and SEPARATOR in keys[0] else COUNTRY


def _upstream(asset: AssetsDefinition) -> set[AssetKey]:
    return {dep.asset_key for spec in asset.specs for dep in spec.deps} - set(asset.keys)


def plan_waves(defs: Definitions) -> list[Wave]:
    """Waves of assets, alternating partitionings, in an order that respects every declared
    dependency (a cycle or a dependency on an undefined asset is an error)."""
    remaining = [a for a in (defs.assets or []) if isinstance(a, AssetsDefinition)]
    known = {k for a in remaining for k in a.keys}
    for a in remaining:
        missing = _upstream(a) - known
        if missing:
            raise ValueError(f"{a.keys}: depends on undefined assets {sorted(map(str, missing))}")
    order = {id(a): i for i, a in enumerate(remaining)}
    done: set[AssetKey] = set()
    waves: list[Wave] = []
    prefer = COUNTRY
    while remaining:
        for kind in (prefer, YEARLY if prefer == COUNTRY else COUNTRY):
            chosen: list[AssetsDefinition] = []
            ready = set(done)
            grew = True
            while grew:
                grew = False
                for a in remaining:
                    if a not in chosen and _kind(a) == kind and _upstream(a) <= ready:
                        chosen.append(a)
                        ready |= set(a.keys)
                        grew = True
            if chosen:
                break
        if not chosen:
            raise ValueError(f"dependency cycle among {[a.keys for a in remaining]}")
        chosen.sort(key=lambda a: order[id(a)])
        waves.append(Wave(kind, tuple(k for a in chosen for k in a.keys)))
        done |= {k for a in chosen for k in a.keys}
        remaining = [a for a in remaining if a not in chosen]
        prefer = YEARLY if kind == COUNTRY else COUNTRY
    return waves


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
    for number, wave in enumerate(plan_waves(defs), start=1):
        partitions = [country] if wave.kind == COUNTRY else [country_year_key(country, y) for y in years]
        for key in partitions:
            t0 = time.perf_counter()
            result = materialize(assets, selection=list(wave.keys), partition_key=key, resources=resources,
                                 instance=instance, raise_on_error=True, tags={"siscore/wave": str(number)},
                                 run_config=QUIET_CONSOLE)
            dt = time.perf_counter() - t0
            report.run_ids.append(result.run_id)
            stats = [s for s in instance.get_run_step_stats(result.run_id) if s.start_time and s.end_time]
            for stat in stats:
                report.seconds[stat.step_key] = report.seconds.get(stat.step_key, 0.0) + stat.end_time - stat.start_time
            overhead = dt - sum(s.end_time - s.start_time for s in stats)
            report.seconds["dagster_overhead"] = report.seconds.get("dagster_overhead", 0.0) + overhead
            log(f"  wave {number} {wave.kind} {key}: {', '.join(wave.names)} ({dt:.1f} s)")
    return report

