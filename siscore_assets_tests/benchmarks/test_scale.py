"""benchmarks/scale.py's stage runner: a benchmark stopped by SIGTERM ends the stage it runs,
the stage's own children included, instead of leaving them to load the machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]

BENCH = """
import os, sys
from pathlib import Path
from benchmarks.scale import run_tree, terminate_as_interrupt
terminate_as_interrupt()
pids = sys.argv[1]
run_tree(["bash", "-c", f"sleep 300 & echo $! > {pids}.tmp; echo $$ >> {pids}.tmp; "
          f"mv {pids}.tmp {pids}; wait"], dict(os.environ), Path(sys.argv[2]))
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_terminated_benchmark_kills_its_stage_and_the_stage_children(tmp_path):
    pids = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bench = subprocess.Popen(
        [sys.executable, "-c", BENCH, str(pids), str(tmp_path / "stage")], cwd=REPO, env=env
    )
    deadline = time.monotonic() + 60
    while not pids.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    stage = [int(v) for v in pids.read_text().split()]  # the stage's child, then the stage
    assert len(stage) == 2 and not any(_gone(p) for p in stage)
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(timeout=60) != 0
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in stage)
