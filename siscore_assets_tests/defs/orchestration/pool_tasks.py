"""Tasks for the process-pool tests (module level: a spawned worker imports them)."""

from __future__ import annotations

import os
import subprocess
import time


def run_with_a_step(path: str, seconds: float = 120.0) -> None:
    """A partition run in progress: a step process of its own, then work; the worker's and the
    step's pids are written to ``path`` first."""
    step = subprocess.Popen(["sleep", str(int(seconds))])
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()} {step.pid}\n")
    time.sleep(seconds)
