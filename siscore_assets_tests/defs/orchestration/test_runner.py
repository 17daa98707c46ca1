"""`siscore run`'s partition workers end with it, step processes included: a run killed from
outside (SIGKILL: no ``finally`` runs) leaves nothing running, and an interrupted wave stops its
workers and their steps at once."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from siscore_assets.defs.orchestration import runner
from siscore_assets_tests.defs.orchestration.pool_tasks import run_with_a_step

REPO = Path(__file__).resolve().parents[3]
POOL_SCRIPT = """
import sys, time
from siscore_assets.defs.orchestration.runner import worker_pool
from siscore_assets_tests.defs.orchestration.pool_tasks import run_with_a_step
pool = worker_pool(object(), 2)
runs = [pool.submit(run_with_a_step, sys.argv[1]) for _ in range(2)]  # two partition runs
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def started(path: Path, runs: int, seconds: float = 60.0) -> list[int]:
    """The pids (worker, step) of ``runs`` runs once each has written them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = path.read_text().split("\n") if path.exists() else []
        pids = [int(p) for line in lines if line.strip() for p in line.split()]
        if len(pids) == 2 * runs:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"{runs} runs did not start: {path} holds {pids}")


@pytest.mark.skipif(not hasattr(os, "setpgrp"), reason="process groups are POSIX")
def test_a_killed_run_leaves_no_worker_nor_step_running(tmp_path):
    pids_file = tmp_path / "pids"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(pids_file)], cwd=REPO, env=env)
    try:
        pids = started(pids_file, 2)
        assert all(alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_gone(pids) == []
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not hasattr(os, "setpgrp"), reason="process groups are POSIX")
def test_an_interrupted_wave_stops_its_workers_and_steps_at_once(tmp_path):
    pids_file = tmp_path / "pids"
    pool = runner.worker_pool(object(), 2)
    busy = [pool.submit(run_with_a_step, str(pids_file)) for _ in range(3)]  # 2 run, 1 waits
    pids = started(pids_file, 2)
    t0 = time.monotonic()
    runner.stop_pool(pool, finished=False)
    assert wait_gone(pids) == [] and time.monotonic() - t0 < 20
    # the third run may already sit in the executor's call queue (marked running, not
    # cancellable): it ends once the pool notices its workers died, without starting
    concurrent.futures.wait([busy[2]], timeout=20)
    assert busy[2].cancelled() or busy[2].done()
    assert len(Path(pids_file).read_text().split()) == 4  # the waiting run never started
