"""Block-level work of one partition on Dask distributed: local workers by default, a cluster
when a scheduler address is configured.

Why Dask: it ships a local cluster of worker processes that needs no service, the same client
code drives a remote cluster (``dask-scheduler`` / ``dask-worker``, Kubernetes, HPC queues),
and it reschedules the tasks of a worker that died.  Every task runs with the same, fixed number
of torch / BLAS threads and results are gathered in task order, so one worker and many give
identical results.  Workers must see the same file system (the tile store and model files).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

ENV_WORKERS = "SISCORE_WORKERS"
ENV_SCHEDULER = "SISCORE_DASK_SCHEDULER"
#: With ``workers: 0``, a local cluster starts only when each worker gets at least this many
#: tiles: starting workers (and importing torch in each) costs seconds a small partition never wins back.
AUTO_TILES_PER_WORKER = 8192


class BlockError(RuntimeError):
    """A block's task failed (after its retries): names the block and the reason."""


@dataclass(frozen=True)
class WorkerConfig:
    """``workers``: local worker processes (0 = automatic: one per core once the partition has
    ``AUTO_TILES_PER_WORKER`` tiles per worker, else this process; 1 = in this process);
    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) to run on instead;
    ``threads``: torch / BLAS threads of each task; ``retries``: re-runs of a failed block."""

    workers: int = 0
    scheduler: str | None = None
    threads: int = 1
    retries: int = 1

    @classmethod
    def from_env(cls, workers: int | None = None, scheduler: str | None = None) -> WorkerConfig:
        """$SISCORE_WORKERS and $SISCORE_DASK_SCHEDULER, unless given."""
        if workers is None:
            raw = os.environ.get(ENV_WORKERS, "0").strip() or "0"
            try:
                workers = int(raw)
            except ValueError as exc:
                raise ValueError(f"${ENV_WORKERS}={raw!r}: expected a whole number of workers") from exc
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        return cls(workers=workers, scheduler=scheduler or os.environ.get(ENV_SCHEDULER) or None)

    def local_workers(self, tiles: int | None = None) -> int:
        """Workers to start for a partition of ``tiles`` tiles (unknown: as many as allowed)."""
        if self.workers:
            return self.workers
        cores = os.cpu_count() or 1
        return cores if tiles is None else max(1, min(cores, tiles // AUTO_TILES_PER_WORKER))


def _with_threads(threads: int, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` with a fixed thread count, so a block gives the same numbers wherever it runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def run_blocks(fn: Callable[..., T], tasks: Sequence[tuple], names: Sequence[str],
               config: WorkerConfig, *, tiles: int | None = None,
               log: Callable[[str], None] | None = None) -> list[T]:
    """``[fn(*task) for task in tasks]``, in task order, on ``config``'s workers.

    One task, or one local worker (``tiles``: the partition's size, for the automatic count),
    runs in this process: no cluster to start.  A failure names the block (``names``) it came
    from.  ``fn`` must be importable (a module-level function).
    """
    if len(tasks) != len(names):
        raise ValueError("one name per task")
    local = config.local_workers(tiles)
    if config.scheduler is None and (len(tasks) <= 1 or local <= 1):
        out = []
        for name, task in zip(names, tasks):
            out.append(_run_here(fn, task, name, config))
        return out
    from dask.distributed import Client, LocalCluster

    if config.scheduler:
        client = Client(config.scheduler)
        cluster = None
    else:
        n = min(local, len(tasks))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"OMP_NUM_THREADS": str(config.threads), "MKL_NUM_THREADS": str(config.threads)})
        client = Client(cluster)
    try:
        if log:
            log(f"{len(tasks)} blocks on {len(client.scheduler_info()['workers'])} Dask worker(s)"
                f"{' at ' + config.scheduler if config.scheduler else ' (local)'}")
        futures = [client.submit(_with_threads, config.threads, fn, *task, key=f"block-{i}-{name}",
                                 pure=False, retries=config.retries)
                   for i, (name, task) in enumerate(zip(names, tasks))]
        out = []
        for name, fut in zip(names, futures):
            try:
                out.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - re-raised naming the block
                raise BlockError(f"block {name} failed after {config.retries} retr"
                                 f"{'y' if config.retries == 1 else 'ies'}: {type(exc).__name__}: {exc}") from exc
        return out
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_here(fn: Callable[..., T], task: tuple, name: str, config: WorkerConfig) -> T:
    for attempt in range(config.retries + 1):
        try:
            return _with_threads(config.threads, fn, *task)
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised naming the block
            if attempt == config.retries:
                raise BlockError(f"block {name} failed after {config.retries} retr"
                                 f"{'y' if config.retries == 1 else 'ies'}: {type(exc).__name__}: {exc}") from exc
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
