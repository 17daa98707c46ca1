"""Worker processes that do not outlive the process that started them, nor leave theirs behind.

`siscore run` runs a wave's partitions in a pool of spawned processes.  Killed from outside (a
scheduler's time limit, ``kill``, the OOM killer), the run's process may die without its
``finally``, and its workers would go on scoring into a warehouse nobody watches (seen: a killed
run's workers kept running, SIGTERM sent to them taken by a library's handler).  So each worker
leads a process group of its own (the step processes a multiprocess executor forks join it) and
watches its parent: once the parent is gone, it kills its whole group.  A thread polling
``getppid`` rather than Linux's ``PR_SET_PDEATHSIG``: that signal can be caught, would not reach
the group, and does not exist on macOS.  Hand-written: nothing in the stack does this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable

#: How often a worker checks that its parent is alive (seconds).
WATCH_S = 0.5
#: How long interrupted workers get to stop their runs themselves before their groups are killed.
GRACE_S = 10.0


def _end_own_group() -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_S)
    _end_own_group()


_stop = None  # a worker's stop event (multiprocessing.Event), set by the pool's owner


def unless_stopped(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a pool worker, or None once the pool's owner is stopping it: a
    task already queued to the worker when the owner stopped does not start."""
    if _stop is not None and _stop.is_set():
        return None
    return fn(*args, **kwargs)


def die_with_parent(parent_pid: int, stop=None) -> None:
    """A process-pool ``initializer``: lead a process group, and kill it (this worker and every
    process it started) as soon as the parent ``parent_pid`` is gone.  ``stop``: an event the
    owner sets when it stops the pool (:func:`unless_stopped`)."""
    global _stop
    _stop = stop
    if not hasattr(os, "setpgrp"):  # no process groups (Windows): the worker ends with its task
        return
    os.setpgrp()
    threading.Thread(target=_watch, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _signal_group(pid: int, signo: int) -> None:
    # ProcessLookupError: the group has ended; AttributeError: no process groups here
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
        os.killpg(pid, signo)


def end_groups(workers: Iterable, grace_s: float = GRACE_S) -> None:
    """Stop pool workers set up by :func:`die_with_parent` (``multiprocessing`` processes) and
    their groups: SIGINT first, so Dagster stops its runs and steps as on Ctrl-C; after at most
    ``grace_s`` every process left in those groups is killed."""
    workers = list(workers)
    for w in workers:
        _signal_group(w.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        _signal_group(w.pid, signal.SIGKILL)
        if w.is_alive():  # not a group leader (no process groups here)
            w.kill()
