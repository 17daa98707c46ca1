"""Materialise a whole country in dependency order, as one would by hand in the UI.

A single Dagster run cannot mix ``country``, ``country|year`` and ``country|annotator``
partitions, so the graph is run in waves, each the largest set of assets of one partitioning whose
every declared dependency is already done.  An annotator wave runs one partition per annotator the
instance has registered for the country (``annotation_inputs``, in an earlier wave, registers
them).  The waves are derived from the asset graph itself (:func:`plan_waves`), so an asset can
never run before what it reads.

Each partition of a wave is one run created in the Dagster instance (``execute_job`` on a
reconstructable job, multiprocess executor), so it shows in the UI like any other run; the
yearly partitions of a wave run side by side, as many at once as the instance's run queue
allows.  Not through the queue itself: a queued run waits for the daemon, which `siscore run`
does not need.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    IdentityPartitionMapping,
    build_reconstructable_job,
    execute_job,
    materialize,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG

from siscore_assets.core.compute.lifetime import die_with_parent, end_groups, unless_stopped
from siscore_assets.core.countries import ENV_COUNTRIES

from ..common.context import NOT_CONFIGURED
from ..common.partitions import (
    ANNOTATOR,
    COUNTRY,
    YEARLY,
    country_annotator_key,
    country_year_key,
    partition_kind,
    registered_annotators,
)
from .scope import WHOLE_RUN, PartialRun, Scope

# The terminal shows the runner's own lines; Dagster's events (and a failed step's trace) stay in
# its event log, visible in `make dev`, and the failures are summarised once the wave ends.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
VERBOSE_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
KINDS = (COUNTRY, YEARLY, ANNOTATOR)


@dataclass(frozen=True)
class Wave:
    kind: str  # "country", "yearly" or "annotator"
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


def _upstream(asset: AssetsDefinition) -> set[AssetKey]:
    return {dep.asset_key for spec in asset.specs for dep in spec.deps} - set(asset.keys)


def _across(asset: AssetsDefinition) -> set[AssetKey]:
    """Upstream assets read in other partitions than the run's own (another year's scores for a
    change map): they must be done in an earlier wave, since a wave's partitions run side by
    side and one year's run would otherwise read another's half-done or missing rows."""
    return {
        dep.asset_key
        for spec in asset.specs
        for dep in spec.deps
        if dep.partition_mapping is not None
        and not isinstance(dep.partition_mapping, IdentityPartitionMapping)
    } - set(asset.keys)


def plan_waves(defs: Definitions, only: Collection[AssetKey] | None = None) -> list[Wave]:
    """Waves of assets, alternating partitionings, in an order that respects every declared
    dependency (a cycle or a dependency on an undefined asset is an error); a dependency read in
    other partitions is done in an earlier wave."""
    return plan_asset_waves(list(defs.assets or []), only)


def plan_asset_waves(assets: list, only: Collection[AssetKey] | None = None) -> list[Wave]:
    """:func:`plan_waves` over ``assets``; with ``only``, the waves of just the assets holding
    those keys (whole multi-assets), everything else counted as done already (the follow-up of
    a yearly run)."""
    remaining = [a for a in assets if isinstance(a, AssetsDefinition)]
    known = {k for a in remaining for k in a.keys}
    for a in remaining:
        missing = _upstream(a) - known
        if missing:
            raise ValueError(f"{a.keys}: depends on undefined assets {sorted(map(str, missing))}")
    if only is not None:
        remaining = [a for a in remaining if set(a.keys) & set(only)]
    order = {id(a): i for i, a in enumerate(remaining)}
    done: set[AssetKey] = known - {k for a in remaining for k in a.keys}
    waves: list[Wave] = []
    prefer = 0
    while remaining:
        for kind in (KINDS[(prefer + i) % len(KINDS)] for i in range(len(KINDS))):
            chosen: list[AssetsDefinition] = []
            ready = set(done)
            grew = True
            while grew:
                grew = False
                for a in remaining:
                    if (
                        a not in chosen
                        and partition_kind(a) == kind
                        and _upstream(a) <= ready
                        and _across(a) <= done
                    ):
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
        prefer = (KINDS.index(kind) + 1) % len(KINDS)
    return waves


class RunFailed(RuntimeError):
    """A run of ``siscore run`` failed: ``lines`` holds one ``<partition> <step>: <message>`` per
    failed step, ``traces`` the full error of each (for a log file or ``--verbose``)."""

    def __init__(self, lines: list[str], traces: list[str] | None = None) -> None:
        self.lines, self.traces = list(lines), list(traces or [])
        super().__init__("; ".join(self.lines))


@dataclass(frozen=True)
class StepFailure:
    """One failed step of one run: where, the error's own message once, and its full trace."""

    partition: str
    step: str
    message: str
    trace: str

    @property
    def line(self) -> str:
        return f"{self.partition} {self.step}: {self.message}"


def _strip_class(message: str, cls_name: str | None) -> str:
    """``pkg.mod.SomeError: text`` -> ``text`` (Dagster keeps the class before the message)."""
    text = message.strip()
    head, sep, rest = text.partition(": ")
    if sep and cls_name and (head == cls_name or head.endswith("." + cls_name)):
        return rest.strip()
    return text


def step_failures(instance: DagsterInstance, run_id: str, partition: str) -> list[StepFailure]:
    """The failing steps of a run: the user's error (not Dagster's wrapper), its message once."""
    out = []
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = record.dagster_event
        outer = getattr(event.event_specific_data, "error", None)
        error = outer
        while error is not None and error.cause is not None:
            error = error.cause
        message = _strip_class(error.message, error.cls_name) if error is not None else "failed"
        first = next((s for s in message.splitlines() if s.strip()), "failed").strip()
        trace = outer.to_string() if outer is not None else message
        out.append(StepFailure(partition, event.step_key or "?", first, trace))
    if not out:
        for record in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
            message = (record.dagster_event.message or "run failed").strip()
            out.append(StepFailure(partition, "run", message.splitlines()[0], message))
    return out or [StepFailure(partition, "run", "failed", "")]


def failure_message(instance: DagsterInstance, run_id: str) -> str:
    """The failing steps of a run and their errors, ``step S failed: message`` each."""
    return "; ".join(
        f"step {f.step} failed: {f.message}" for f in step_failures(instance, run_id, "")
    )


@dataclass(frozen=True)
class JobTarget:
    """Where every process finds the wave job: a module-level factory and its plain arguments
    (``siscore_assets.definitions:wave_job``), so the multiprocess executor's step processes
    rebuild the same job.  ``None`` runs in this process (an ephemeral instance cannot hold a
    multiprocess run)."""

    module: str
    function: str
    kwargs: dict = field(default_factory=dict)


def _console(tags: dict) -> dict:
    return VERBOSE_CONSOLE if tags.get("siscore/verbose") == "1" else QUIET_CONSOLE


def _execute(
    target: JobTarget, names: list[str], key: str, tags: dict, instance: DagsterInstance
) -> tuple[str, bool]:
    job = build_reconstructable_job(
        target.module, target.function, reconstructable_kwargs={**target.kwargs, "names": names}
    )
    with execute_job(
        job, instance, run_config=_console(tags), tags={**tags, PARTITION_NAME_TAG: key}
    ) as result:
        return result.run_id, result.success


def execute_partition(
    target: JobTarget, names: list[str], key: str, tags: dict, instance_ref
) -> tuple[str, bool]:
    """One partition run in a worker process (module-level: the process pool pickles it)."""
    with DagsterInstance.from_ref(instance_ref) as instance:
        return _execute(target, names, key, tags, instance)


def _run_one(
    instance: DagsterInstance,
    target: JobTarget | None,
    assets: list,
    resources: dict,
    wave: Wave,
    number: int,
    key: str,
    pool: ProcessPoolExecutor | None,
    verbose: bool = False,
) -> Future:
    """Start one partition run: in a worker process (parallel), else here; a future either way."""
    tags = {"siscore/wave": str(number), "siscore/run": "cli"}
    if verbose:
        tags["siscore/verbose"] = "1"
    if pool is not None and target is not None:
        return pool.submit(execute_partition, target, wave.names, key, tags, instance.get_ref())
    done: Future = Future()
    if target is None:
        result = materialize(
            assets,
            selection=list(wave.keys),
            partition_key=key,
            resources=resources,
            instance=instance,
            raise_on_error=False,
            tags=tags,
            run_config=_console(tags),
        )
        done.set_result((result.run_id, result.success))
    else:
        done.set_result(_execute(target, wave.names, key, tags, instance))
    return done


def materialize_country(
    defs: Definitions,
    country: str,
    years: Sequence[int],
    *,
    instance: DagsterInstance | None = None,
    log: Callable[[str], None] = print,
    target: JobTarget | None = None,
    parallel: int = 1,
    annotators: int | None = None,
    verbose: bool = False,
    scope: Scope = WHOLE_RUN,
) -> RunReport:
    """Run every asset for ``country`` over ``years``, wave after wave; the yearly partitions of
    a wave run side by side (at most ``parallel`` runs at once).  Each partition is one run
    recorded in ``instance``; with a ``target`` it runs on the multiprocess executor.  Raises
    :class:`RunFailed` naming the failed steps once the wave's runs are done (later waves do not
    start; the partitions that succeeded stay).  ``annotators``: how many annotator partitions
    to expect (the progress count is then right from the start; default: those registered).
    ``scope``: a partial run (``--years``) keeps the learned models unless ``refit``, and
    refreshes the score readers of every other scored year (``scope.py``)."""
    instance = instance or DagsterInstance.ephemeral()
    if instance.is_ephemeral:
        target = None
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    report = RunReport(country, list(years))
    waves = plan_waves(defs)
    expected = annotators or len(registered_annotators(instance, country)) or 1
    sizes = {YEARLY: len(years), COUNTRY: 1, ANNOTATOR: expected}
    total = sum(sizes[w.kind] for w in waves)
    pool, finished = worker_pool(target, min(parallel, len(years))), False
    try:
        done = _waves(
            instance,
            target,
            assets,
            resources,
            waves,
            country,
            years,
            report,
            log,
            pool,
            {"total": total, "expected": expected, "verbose": verbose, "scope": scope},
        )
        finished = True
        return done
    except RunFailed:
        finished = True  # every run of the failed wave has ended
        raise
    finally:
        if pool is not None:
            stop_pool(pool, finished)


@dataclass(frozen=True)
class PartitionRun:
    key: str
    run_id: str
    success: bool
    seconds: float


def run_partitions(
    instance: DagsterInstance,
    target: JobTarget | None,
    wave: Wave,
    keys: Sequence[str],
    *,
    number: int = 1,
    assets: list | None = None,
    resources: dict | None = None,
    pool: ProcessPoolExecutor | None = None,
    verbose: bool = False,
    waves: Mapping[str, Wave] | None = None,
) -> Iterator[PartitionRun]:
    """One run per partition key of ``wave``'s assets (``waves``: another selection for some
    keys), side by side in ``pool`` (else one after another here); yields each as it
    finishes."""
    started = {}
    for key in keys:
        t0 = time.perf_counter()  # before: a run without a pool has finished when _run_one returns
        future = _run_one(
            instance,
            target,
            assets or [],
            resources or {},
            (waves or {}).get(key, wave),
            number,
            key,
            pool if len(keys) > 1 else None,
            verbose,
        )
        started[future] = (key, t0)
    for future in as_completed(started):
        key, t0 = started[future]
        run_id, ok = future.result()
        yield PartitionRun(key, run_id, ok, time.perf_counter() - t0)


class WorkerPool(ProcessPoolExecutor):
    """Spawned worker processes, each leading a process group that dies with this process
    (``core/compute/lifetime.py``), with the event that tells them to start no new run."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        super().__init__(
            workers,
            mp_context=context,
            initializer=die_with_parent,  # a killed `siscore run` takes its partition runs along
            initargs=(os.getpid(), self.stop_event),
        )

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """As the stdlib's, but a task still queued when the pool is stopped does not start."""
        return super().submit(unless_stopped, fn, *args, **kwargs)

    def workers(self) -> list:
        """The worker processes (the stdlib's own record; ``shutdown`` forgets it)."""
        return list((getattr(self, "_processes", None) or {}).values())


def worker_pool(target: JobTarget | None, workers: int) -> WorkerPool | None:
    """Worker processes for partition runs side by side (concurrent ``execute_job`` calls in
    threads of one process deadlocked here), or None when runs go one at a time."""
    if target is None or workers < 2:
        return None
    return WorkerPool(workers)


def stop_pool(pool: WorkerPool, finished: bool) -> None:
    """Shut ``pool`` down: after the waves, wait for it; after an error or Ctrl-C, start no
    queued run and stop the running ones and their steps now (SIGINT, then after a grace period
    SIGKILL: writes are atomic, the earlier partitions stay)."""
    if finished:
        pool.shutdown()
        return
    pool.stop_event.set()
    workers = pool.workers()
    pool.shutdown(wait=False, cancel_futures=True)
    end_groups(workers)


def _waves(
    instance, target, assets, resources, waves, country, years, report, log, pool, count
) -> RunReport:
    done, total = 0, count["total"]
    partial = PartialRun.start(instance, assets, country, years, count["scope"])
    planned: dict[int, dict[str, Wave]] = {}  # a partial run's runs, known before any starts
    for number, wave in enumerate(waves, start=1):
        if partial is not None and wave.kind != ANNOTATOR:
            runs = partial.runs(instance, wave.kind == YEARLY, wave.keys)
            planned[number] = {key: Wave(wave.kind, keys) for key, keys in runs.items()}
            total += len(planned[number]) - (len(years) if wave.kind == YEARLY else 1)
    for number, wave in enumerate(waves, start=1):
        selected = planned.get(number, {})
        if number in planned and not selected:
            log(f"  wave {number}/{len(waves)} {wave.kind} {country}: {', '.join(wave.names)} "
                "kept (learned models; --refit re-fits them)")  # fmt: skip
            continue
        if wave.kind == ANNOTATOR:
            registered = registered_annotators(instance, country)
            partitions = [country_annotator_key(country, n) for n in registered]
            if partial is not None:
                partitions = partial.first_annotators(instance, wave.keys, partitions)
                if not partitions and registered:
                    log(f"  wave {number}/{len(waves)} annotator {country}: "
                        f"{', '.join(wave.names)} kept (--refit re-runs them)")  # fmt: skip
                    total -= count["expected"]
                    continue
            note = _not_configured_note(instance, "annotation_inputs", country)
            if not partitions and note:  # e.g. an analysis-only country: no clusters to rank
                log(f"  wave {number}/{len(waves)} annotator {country}: {', '.join(wave.names)} "
                    f"not configured ({note})")  # fmt: skip
                total -= count["expected"]
                continue
            if not partitions:
                raise RunFailed(
                    [
                        f"{country} {', '.join(wave.names)}: no annotator partitions registered "
                        "(annotation_inputs found no POG)"
                    ]
                )
            total += len(partitions) - count["expected"]
        elif selected:
            partitions = list(selected)
        elif wave.kind == COUNTRY:
            partitions = [country]
        else:
            partitions = [country_year_key(country, y) for y in years]
        failed = []
        for run in run_partitions(
            instance,
            target,
            wave,
            partitions,
            number=number,
            assets=assets,
            resources=resources,
            pool=pool,
            verbose=count["verbose"],
            waves=selected,
        ):
            done += 1
            report.run_ids.append(run.run_id)
            stats = [
                s for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time
            ]
            for stat in stats:
                report.seconds[stat.step_key] = (
                    report.seconds.get(stat.step_key, 0.0) + stat.end_time - stat.start_time
                )
            overhead = max(0.0, run.seconds - sum(s.end_time - s.start_time for s in stats))
            report.seconds["dagster_overhead"] = (
                report.seconds.get("dagster_overhead", 0.0) + overhead
            )
            mark = "ok" if run.success else "FAILED"
            names = selected[run.key].names if run.key in selected else wave.names
            log(
                f"  wave {number}/{len(waves)} {wave.kind} {run.key}: {', '.join(names)} "
                f"({run.seconds:.1f} s, {mark}) [{done}/{total} runs]"
            )
            if not run.success:
                failed.extend(step_failures(instance, run.run_id, run.key))
        if failed:
            raise RunFailed(
                [f.line for f in failed],
                [f"== {f.partition} {f.step} (wave {number})\n{f.trace}" for f in failed],
            )
    return report


def _not_configured_note(instance: DagsterInstance, asset: str, partition: str) -> str | None:
    """The note of ``asset``'s latest materialisation of ``partition`` when it recorded 'not
    configured' (the country lacks what the asset needs), else None."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    meta = records[0].asset_materialization.metadata
    status = getattr(meta.get("status"), "value", None)
    if status != NOT_CONFIGURED:
        return None
    return str(getattr(meta.get("note"), "value", "")) or status


def run_target(defs: Definitions, executor: str | None = None) -> JobTarget:
    """The reconstructable pointer to the wave jobs of ``defs``: the same countries file, data
    root and warehouse, given as plain arguments to ``siscore_assets.definitions:wave_job``;
    ``executor`` is the executor of each run's steps (None: the platform's default)."""
    settings, warehouse = defs.resources["settings"], defs.resources["warehouse"]
    # Resolved here: a forkserver started earlier in this process may hold another environment.
    countries_file = settings.countries_file or os.environ.get(ENV_COUNTRIES)
    return JobTarget(
        "siscore_assets.definitions",
        "wave_job",
        {
            "countries_file": countries_file,
            "data_root": settings.data_root,
            "warehouse_path": getattr(warehouse, "database", None),
            "executor": executor,
        },
    )
