"""Block work in this process, on its worker threads and on local Dask worker processes: same
results, in order; failures named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from siscore_assets.core.compute import blocks


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"tile {x} is bad")
    return x


def fail_once(marker: str, x: int) -> int:
    """Fails the first time it runs for ``marker``: a transient read error."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise OSError("transient IReadBlock error")
    return x


def die_once(marker: str, x: int) -> int:
    """Kills its worker process the first time: the scheduler must run the block again."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(1)
    return x + 1


def slow_or_failing(marker_dir: str, x: int) -> int:
    """Block 0 takes a second, block 1 fails at once, the others take 0.2 s (instant ones could
    all start in the moment before the failure is seen); every block notes that it started."""
    import time

    (Path(marker_dir) / f"started-{x}").write_text("")
    if x == 1:
        raise ValueError("tile 1 is bad")
    time.sleep(1.0 if x == 0 else 0.2)
    return x


def seen_an_hour_ago(x: int) -> int:
    """What a suspended process looks like to Dask on resume: its worker last heard of an hour
    ago.  Then waits past the scheduler's heartbeat check before returning."""
    import time

    from distributed.scheduler import Scheduler

    for scheduler in list(Scheduler._instances):
        for worker in scheduler.workers.values():
            worker.last_seen -= 3600
    time.sleep(1.5)
    return x


def test_in_process_keeps_order_and_names_a_failing_block():
    cfg = blocks.WorkerConfig(workers=1, retries=0)
    assert blocks.run_blocks(
        square, [(i,) for i in range(5)], [f"b{i}" for i in range(5)], cfg
    ) == [0, 1, 4, 9, 16]
    with pytest.raises(blocks.BlockError, match=r"block b3 failed .*ValueError: tile 3 is bad"):
        blocks.run_blocks(fail_on, [(i, 3) for i in range(5)], [f"b{i}" for i in range(5)], cfg)


@pytest.mark.parametrize("workers", [1, 2], ids=["this thread", "two threads"])
def test_a_transient_failure_is_retried(tmp_path, workers):
    cfg = blocks.WorkerConfig(workers=workers, retries=1)
    tasks = [(str(tmp_path / "m0"), 7), (str(tmp_path / "m1"), 8)]
    assert blocks.run_blocks(fail_once, tasks, ["b0", "b1"], cfg) == [7, 8]


def test_automatic_worker_count_follows_the_partition_size():
    cfg = blocks.WorkerConfig(workers=0)
    assert cfg.local_workers(tiles=100) == 1
    assert cfg.local_workers(tiles=10**7) == (os.cpu_count() or 1)
    assert blocks.WorkerConfig(workers=3).local_workers(tiles=1) == 3


def test_worker_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(blocks.ENV_WORKERS, "2")
    monkeypatch.setenv(blocks.ENV_SCHEDULER, "tcp://scheduler:8786")
    monkeypatch.setenv(blocks.ENV_PROCESSES, "1")
    cfg = blocks.WorkerConfig.from_env()
    assert (cfg.workers, cfg.scheduler, cfg.processes) == (2, "tcp://scheduler:8786", True)
    monkeypatch.setenv(blocks.ENV_WORKERS, "many")
    with pytest.raises(ValueError, match="SISCORE_WORKERS='many'"):
        blocks.WorkerConfig.from_env()


def test_step_threads_given_from_the_environment_or_two(monkeypatch):
    monkeypatch.delenv(blocks.ENV_STEP_THREADS, raising=False)
    assert blocks.step_threads() == blocks.DEFAULT_STEP_THREADS == 2
    assert blocks.step_threads(5) == 5
    monkeypatch.setenv(blocks.ENV_STEP_THREADS, "3")
    assert blocks.step_threads() == 3
    monkeypatch.setenv(blocks.ENV_STEP_THREADS, "all")
    with pytest.raises(ValueError, match="SISCORE_STEP_THREADS='all'"):
        blocks.step_threads()
    with pytest.raises(ValueError, match=">= 1"):
        blocks.step_threads(0)


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_two_local_workers_same_results_failures_named(processes):
    cfg = blocks.WorkerConfig(workers=2, retries=0, processes=processes)
    names = [f"b{i}" for i in range(6)]
    assert blocks.run_blocks(square, [(i,) for i in range(6)], names, cfg) == [
        i * i for i in range(6)
    ]
    with pytest.raises(blocks.BlockError, match=r"block b4 failed .*tile 4 is bad"):
        blocks.run_blocks(fail_on, [(i, 4) for i in range(6)], names, cfg)


def test_a_worker_process_that_dies_midway_is_replaced_and_its_block_rerun(tmp_path):
    assert blocks.run_blocks(
        die_once,
        [(str(tmp_path / "m"), i) for i in range(2)],
        ["b0", "b1"],
        blocks.WorkerConfig(workers=2, retries=0, processes=True),
    ) == [1, 2]


def test_prefetch_keeps_order_and_raises_the_producers_error():
    assert list(blocks.prefetch(iter(range(10)), depth=2)) == list(range(10))

    def broken():
        yield 1
        raise OSError("block vanished")

    got = []
    with pytest.raises(OSError, match="block vanished"):
        for item in blocks.prefetch(broken()):
            got.append(item)
    assert got == [1]
    for item in blocks.prefetch(iter(range(1000)), depth=1):  # stopping early ends the producer
        if item == 3:
            break


def test_worker_threads_survive_a_suspended_process():
    """Dask drops a worker it has not heard from within ``worker-ttl``; the only worker of an
    in-process Dask cluster was then gone and the run waited for ever (seen after a SIGSTOP).
    Local worker threads finish, even under a short configured limit."""
    import threading

    import dask
    import distributed  # noqa: F401 - its configuration defaults, before they are overridden

    done: list = []
    cfg = blocks.WorkerConfig(workers=2, retries=0)
    with dask.config.set({"distributed.scheduler.worker-ttl": "200ms"}):
        run = threading.Thread(
            target=lambda: done.append(
                blocks.run_blocks(seen_an_hour_ago, [(1,), (2,)], ["b0", "b1"], cfg)
            ),
            daemon=True,
        )
        run.start()
        run.join(timeout=60)
    assert done == [[1, 2]], "the run did not finish: its worker was dropped"


def test_the_first_failing_block_stops_the_threads_run(tmp_path):
    """Block 1 fails while block 0 still runs: the error names block 1 and the blocks not yet
    started are dropped (one may have been picked up in the moment before)."""
    cfg = blocks.WorkerConfig(workers=2, retries=0)
    tasks = [(str(tmp_path), i) for i in range(10)]
    with pytest.raises(blocks.BlockError, match=r"block b1 failed .*tile 1 is bad"):
        blocks.run_blocks(slow_or_failing, tasks, [f"b{i}" for i in range(10)], cfg)
    started = {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}
    assert {0, 1} <= started and len(started - {0, 1}) <= 1, started
