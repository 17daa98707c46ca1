"""Worker processes that do not outlive the process that started them.

`siscore run` runs a wave's partitions in a pool of spawned processes.  Killed from outside (a
scheduler's time limit, ``kill``, an OOM kill), the run's process dies without its ``finally``,
and its workers would go on scoring into a warehouse nobody watches, holding memory and the
tile stores.  On Linux the kernel sends a worker SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``); elsewhere this is a no-op (no such call; a worker then stops once its
task ends).  Hand-written: no library of the stack exposes ``prctl``; it is one libc call.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies; exit now if the parent is
    already gone (it died before the request was made).  A process-pool ``initializer``."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not allowed here (e.g. a seccomp sandbox): the worker ends with its task
    if os.getppid() != parent_pid:
        os._exit(0)
