"""What every asset body starts and ends with: its partition's country (and year), the
'not configured' result, owners and code versions."""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AutomationCondition,
    MaterializeResult,
)

from siscore_assets.core.countries import CountryConfig, CountryRegistry

from .partitions import SEPARATOR, split_country_year
from .resources import SiscoreSettings, Warehouse

OWNERS = ["team:siscore"]
NOT_CONFIGURED = "not configured"


def country_year(
    context: AssetExecutionContext, settings: SiscoreSettings
) -> tuple[CountryConfig, int]:
    """The partition's country and year, checked against the countries file (clear error if not)."""
    code, year = split_country_year(context.partition_key)
    country = settings.country(code)
    country.check_year(year)
    return country, year


def country_only(context: AssetExecutionContext, settings: SiscoreSettings) -> CountryConfig:
    return settings.country(context.partition_key)


def not_configured(
    warehouse: Warehouse, country: CountryConfig, note: str, tables: Mapping[str, Mapping[str, Any]]
) -> list[MaterializeResult]:
    """A layer or input the country does not have ('none'): each of the asset's tables gets
    nothing for this partition (earlier rows are removed, like any other write), no failure.

    ``tables`` maps each table (= asset key) to its partition keys; one result per table."""
    out = []
    for table, keys in tables.items():
        removed = warehouse.clear(table, keys)
        out.append(
            MaterializeResult(
                asset_key=table,
                metadata={
                    "status": NOT_CONFIGURED,
                    "note": f"country {country.code}: {note}",
                    "rows": 0,
                    "rows_removed": removed,
                },
            )
        )
    return out


#: Why an imagery-bound asset has nothing to do for an analysis-only country.
NO_IMAGERY = "an analysis-only country (source: score_file): no imagery to work on"


def imagery_not_configured(
    warehouse: Warehouse,
    country: CountryConfig,
    tables: Mapping[str, Mapping[str, Any]],
    checks: Sequence[str] = (),
) -> list[MaterializeResult] | None:
    """The guard every imagery-bound asset starts with: for an analysis-only country (scores
    made elsewhere, no imagery) its tables are 'not configured' (:func:`not_configured`), and
    the first table's ``checks`` report skipped (never green); None for every other country,
    which goes on as usual."""
    if not country.analysis_only:
        return None
    out = not_configured(warehouse, country, NO_IMAGERY, tables)
    if checks:
        skipped = [
            AssetCheckResult(
                check_name=name,
                passed=False,
                severity=AssetCheckSeverity.WARN,
                metadata={"status": "skipped", "reason": f"country {country.code}: {NO_IMAGERY}"},
            )
            for name in checks
        ]
        first = out[0]
        out[0] = MaterializeResult(
            asset_key=first.asset_key, metadata=first.metadata, check_results=skipped
        )
    return out


def imagery_skipped(country: CountryConfig) -> MaterializeResult | None:
    """The guard of an imagery-bound asset that writes files, not tables (a model, a page): for
    an analysis-only country a 'not configured' result; None for every other country."""
    if not country.analysis_only:
        return None
    note = f"country {country.code}: {NO_IMAGERY}"
    return MaterializeResult(metadata={"status": NOT_CONFIGURED, "note": note, "rows": 0})


def imagery_bound(*tables: str) -> Callable[[Callable], Callable]:
    """The guard of :func:`imagery_not_configured` as a decorator (below the asset decorator),
    for an imagery-bound asset whose body has no room for it: for an analysis-only country each
    of ``tables`` is 'not configured' for the partition and the body does not run."""

    def guard(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse):
        key = context.partition_key
        if SEPARATOR in key:
            country, year = country_year(context, settings)
            keys: dict[str, Any] = {"country": country.code, "year": year}
        else:
            country, keys = settings.country(key), {"country": key}
        return imagery_not_configured(warehouse, country, dict.fromkeys(tables, keys))

    def wrap(body: Callable) -> Callable:
        if inspect.isgeneratorfunction(body):

            @functools.wraps(body)
            def each(context, settings, warehouse):
                done = guard(context, settings, warehouse)
                yield from done if done else body(context, settings, warehouse)

            return each

        @functools.wraps(body)
        def one(context, settings, warehouse):
            done = guard(context, settings, warehouse)
            return done[0] if done else body(context, settings, warehouse)

        return one

    return wrap


def learned_version(registry: CountryRegistry, *modules: str) -> str:
    """A code version for a learned asset: the source of the core modules it runs plus every
    country's model settings, so the UI marks it stale after a code or configuration change."""
    digest = hashlib.sha256()
    for name in modules:  # dotted module names, e.g. "siscore_assets.core.models.scorer"
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    for code in registry.codes:
        c = registry.get(code)
        digest.update(
            repr((code, c.models, c.clusters, c.pretrain, c.annotations, c.source)).encode()
        )
    return digest.hexdigest()[:16]


#: Declarative automation of the learned models people do not rank by hand (the ensemble and the
#: scorer): a partition already materialised is re-materialised on the first tick after its code
#: version (:func:`learned_version`: code or countries-file settings) changed, unless it is
#: running.  Never-materialised partitions are left alone (a first training is asked for), and
#: the clusters are left out on purpose: re-clustering would renumber what annotators ranked.
STALE_MODEL = (
    AutomationCondition.code_version_changed()
    & ~AutomationCondition.missing()
    & ~AutomationCondition.in_progress()
).with_label("stale country model")
STALE_MODEL_SENSOR = "stale_country_models"


#: Problems named one by one in a log line; the rest are counted (the table holds every row).
LOGGED_PROBLEMS = 5


def log_problems(
    context: AssetExecutionContext, what: str, problems: list[str], where: str = ""
) -> None:
    """One warning for a list of problems: how many, the first few, and where the rest are,
    so a 400,000-tile year with bad files is not 400,000 log events."""
    if not problems:
        return
    shown = "; ".join(problems[:LOGGED_PROBLEMS])
    more = (
        f"; and {len(problems) - LOGGED_PROBLEMS} more" if len(problems) > LOGGED_PROBLEMS else ""
    )
    context.log.warning(
        f"{what}: {len(problems)} problem(s): {shown}{more}{f' ({where})' if where else ''}"
    )


def log_rate(
    context: AssetExecutionContext, what: str, tiles: int, seconds: float, workers: str
) -> dict:
    """Log and return a block stage's own throughput (``benchmarks.scale`` reads the line)."""
    rate = tiles / seconds if seconds > 0 else float("nan")
    context.log.info(f"{what}: {tiles} tiles in {seconds:.2f} s = {rate:.1f} tiles/s ({workers})")
    return {"stage_seconds": float(seconds), "tiles_per_second": float(rate), "workers": workers}
