"""`siscore run`'s partition workers end with it: a run killed from outside (SIGKILL: no
``finally`` runs) leaves no worker scoring on, and an interrupted wave stops its workers now."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
import time

import psutil
import pytest

from siscore_assets.defs.orchestration import runner

POOL_SCRIPT = """
import multiprocessing, time
from siscore_assets.defs.orchestration.runner import worker_pool
pool = worker_pool(object(), 2)
runs = [pool.submit(time.sleep, 120) for _ in range(2)]  # two partition runs in progress
while len(multiprocessing.active_children()) < 2:
    time.sleep(0.05)
print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_of_a_killed_run_end_with_it():
    proc = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_gone(workers) == []
    finally:
        proc.kill()
        proc.wait()


def test_an_interrupted_wave_stops_its_workers_now():
    pool = runner.worker_pool(object(), 2)
    busy = [pool.submit(time.sleep, 120) for _ in range(3)]  # two running, one waiting
    while len(multiprocessing.active_children()) < 2:
        time.sleep(0.05)
    workers = [p.pid for p in multiprocessing.active_children()]
    started = time.monotonic()
    runner.stop_pool(pool, finished=False)
    assert wait_gone(workers) == [] and time.monotonic() - started < 20
    assert busy[2].cancelled() or busy[2].done()
