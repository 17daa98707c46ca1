"""Block-level work of one partition: threads of this process by default, local worker
processes or a Dask cluster by configuration.

Local workers are threads of the run's own process by default (the standard library's thread
pool): PNG decoding, numpy and torch release the GIL, and a thread costs no memory, where a
worker process re-imports torch (about 0.9 GB each).  ``processes`` starts local worker processes
and a scheduler address runs the blocks on a cluster, both on Dask distributed: it ships a local
cluster that needs no service, the same client code drives a remote cluster
(``dask-scheduler`` / ``dask-worker``, Kubernetes, HPC queues), and it reschedules the tasks of
a worker that died.  Every task runs with the same, fixed number of torch / BLAS threads and
results are gathered in task order, so one worker and many give identical results.  Workers
must see the same file system (the tile store and model files).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ENV_WORKERS = "SISCORE_WORKERS"
ENV_SCHEDULER = "SISCORE_DASK_SCHEDULER"
ENV_PROCESSES = "SISCORE_WORKER_PROCESSES"
ENV_STEP_THREADS = "SISCORE_STEP_THREADS"
#: torch / BLAS threads of a run's step outside its block tasks (training above all), unless
#: configured: the 2 cores the published figures and CI run on.  A fixed count, not the machine's
#: cores: a trained network's numbers depend on how its sums are split over threads.
DEFAULT_STEP_THREADS = 2
#: With ``workers: 0``, a local cluster starts only when each worker gets at least this many
#: tiles: starting workers (and importing torch in each) costs seconds a small partition never
#: wins back.
AUTO_TILES_PER_WORKER = 8192


class BlockError(RuntimeError):
    """A block's task failed (after its retries): names the block and the reason."""


@dataclass(frozen=True)
class WorkerConfig:
    """``workers``: local workers, threads of this process unless ``processes`` (0 = automatic:
    one per core once the partition has ``AUTO_TILES_PER_WORKER`` tiles per worker, else this
    process; 1 = in this process);
    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) to run on instead;
    ``threads``: torch / BLAS threads of each task; ``retries``: re-runs of a failed block;
    ``processes``: local workers as processes instead of threads of this process."""

    workers: int = 0
    scheduler: str | None = None
    threads: int = 1
    retries: int = 1
    processes: bool = False

    @classmethod
    def from_env(
        cls, workers: int | None = None, scheduler: str | None = None, processes: bool | None = None
    ) -> WorkerConfig:
        """$SISCORE_WORKERS, $SISCORE_DASK_SCHEDULER and $SISCORE_WORKER_PROCESSES (1 / 0),
        unless given."""
        if processes is None:
            processes = os.environ.get(ENV_PROCESSES, "0").strip().lower() in ("1", "true", "yes")
        if workers is None:
            workers = env_count(ENV_WORKERS, 0, "workers")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        return cls(
            workers=workers,
            scheduler=scheduler or os.environ.get(ENV_SCHEDULER) or None,
            processes=processes,
        )

    def describe(self, tiles: int | None = None) -> str:
        """Where a partition of ``tiles`` tiles runs, in words (for logs and metadata)."""
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        n = self.local_workers(tiles)
        return (
            "1 worker (this process)"
            if n <= 1
            else (f"{n} local Dask worker processes" if self.processes else f"{n} worker threads")
        )

    def local_workers(self, tiles: int | None = None) -> int:
        """Workers to start for a partition of ``tiles`` tiles (unknown: as many as allowed)."""
        if self.workers:
            return self.workers
        cores = os.cpu_count() or 1
        return cores if tiles is None else max(1, min(cores, tiles // AUTO_TILES_PER_WORKER))


def env_count(name: str, default: int, what: str) -> int:
    """A whole number from the environment variable ``name`` (unset or blank: ``default``); a
    value that is not one names the variable."""
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"${name}={raw!r}: expected a whole number of {what}") from exc


def step_threads(threads: int | None = None) -> int:
    """The torch / BLAS threads of a run's step: ``threads``, else $SISCORE_STEP_THREADS, else
    ``DEFAULT_STEP_THREADS``.  The same count on any machine (of one instruction set and library
    build) trains the same weights from the same input; the machine's core count would not (a toy
    scorer trained on 1 and on 2 threads differs by 1.6e-5)."""
    if threads is None:
        threads = env_count(ENV_STEP_THREADS, DEFAULT_STEP_THREADS, "threads")
    if threads < 1:
        raise ValueError(f"step threads must be >= 1, got {threads}")
    return threads


def pin_threads(threads: int) -> None:
    """torch's and the BLAS libraries' thread pools at ``threads`` for this process, from now on
    (:func:`fixed_threads` restores them after a block of work)."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    if torch:
        torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """torch's and the BLAS libraries' thread pools at ``threads`` for this process, restored
    after: a block gives the same numbers wherever it runs."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # only when the work uses torch: patches never import it
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch and before:
            torch.set_num_threads(before)


def _with_threads(threads: int, fn: Callable[..., T], *args: Any) -> T:
    """A task on a worker process: ``fn`` with a fixed thread count."""
    with fixed_threads(threads):
        return fn(*args)


def run_blocks(
    fn: Callable[..., T],
    tasks: Sequence[tuple],
    names: Sequence[str],
    config: WorkerConfig,
    *,
    tiles: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[T]:
    """``[fn(*task) for task in tasks]``, in task order, on ``config``'s workers.

    One task, or one local worker (``tiles``: the partition's size, for the automatic count),
    runs in this process: no cluster to start.  A failure names the block (``names``) it came
    from.  ``fn`` must be importable (a module-level function).
    """
    if len(tasks) != len(names):
        raise ValueError("one name per task")
    local = config.local_workers(tiles)
    if config.scheduler is None and (len(tasks) <= 1 or local <= 1):
        with fixed_threads(config.threads):
            return [_run_here(fn, task, name, config) for name, task in zip(names, tasks)]
    if config.scheduler is None and not config.processes:
        return _run_threads(fn, tasks, names, config, min(local, len(tasks)), log)
    from dask.distributed import Client, LocalCluster

    if config.scheduler:
        client, cluster = Client(config.scheduler), None
    else:
        n = min(local, len(tasks))
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
            env={"OMP_NUM_THREADS": str(config.threads), "MKL_NUM_THREADS": str(config.threads)},
        )
        client = Client(cluster)
    try:
        info = client.scheduler_info()["workers"]
        if log:
            where = f"at {config.scheduler}" if config.scheduler else "local processes"
            nthreads = sum(w.get("nthreads", 1) for w in info.values())
            log(f"{len(tasks)} blocks on {nthreads} Dask worker thread(s), {where}")
        futures = [
            client.submit(
                _with_threads,
                config.threads,
                fn,
                *task,
                key=f"block-{i}-{name}",
                pure=False,
                retries=config.retries,
            )
            for i, (name, task) in enumerate(zip(names, tasks))
        ]
        out = []
        for name, fut in zip(names, futures):
            try:
                out.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - re-raised naming the block
                raise _block_error(name, config.retries, exc) from exc
        return out
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_threads(
    fn: Callable[..., T],
    tasks: Sequence[tuple],
    names: Sequence[str],
    config: WorkerConfig,
    threads: int,
    log: Callable[[str], None] | None,
) -> list[T]:
    """The tasks on ``threads`` threads of this process, each retried as in this thread.  The
    first block to fail (after its retries) stops the run: the blocks not yet started are
    dropped, the running ones finish, and the failure is raised naming its block.  The standard
    library's pool, not a local Dask cluster of threads: what Dask adds (rerunning a dead
    worker's tasks) cannot happen to a thread, and its scheduler's heartbeats could drop the only
    worker of a suspended process (a run that waited for ever at 400,000 tiles needed a
    workaround)."""
    if log:
        log(f"{len(tasks)} blocks on {threads} worker thread(s) of this process")
    with fixed_threads(config.threads), ThreadPoolExecutor(threads, "siscore-block") as pool:
        futures = [
            pool.submit(_run_here, fn, task, name, config) for name, task in zip(names, tasks)
        ]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                failed[0].result()  # raises the BlockError; the handler below drops the rest
            return [fut.result() for fut in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _block_error(name: str, retries: int, exc: Exception) -> BlockError:
    return BlockError(
        f"block {name} failed after {retries} retr{'y' if retries == 1 else 'ies'}: "
        f"{type(exc).__name__}: {exc}"
    )


def _run_here(fn: Callable[..., T], task: tuple, name: str, config: WorkerConfig) -> T:
    for attempt in range(config.retries + 1):
        try:
            return fn(*task)
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised naming the block
            if attempt == config.retries:
                raise _block_error(name, config.retries, exc) from exc
    raise AssertionError("unreachable")


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` produced by a background thread, up to ``depth`` ahead: reading and
    decoding the next batch overlaps the model's work on this one (numpy and torch release the
    GIL).  An exception in the producer is raised here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            q.put(_DONE)

    thread = threading.Thread(target=produce, daemon=True, name="siscore-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
