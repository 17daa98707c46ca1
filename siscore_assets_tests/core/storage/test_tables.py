"""The process's in-memory DuckDB (`tables.memory`) across a fork."""

import multiprocessing as mp
import os
import subprocess
import sys
import threading

import pytest

from siscore_assets.core.storage import tables


def _child_query(queue) -> None:
    with tables.memory() as con:
        plain = con.sql("SELECT 41 + 1").fetchone()[0]
    with tables.memory(single_thread=True) as con:
        one_thread = con.sql("SELECT count(*) FROM range(1000)").fetchone()[0]
    queue.put((plain, one_thread))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_gets_its_own_databases_even_while_a_thread_holds_the_lock():
    with tables.memory() as con:
        con.sql("CREATE OR REPLACE TABLE fork_parent AS SELECT 7 AS x")
    stop = threading.Event()
    held = threading.Event()

    def hold_the_lock() -> None:  # another thread of the parent inside memory() at each fork
        while not stop.is_set():
            with tables._MEMORY_LOCK:
                held.set()
                stop.wait(0.005)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)
    ctx = mp.get_context("fork")
    try:
        for _ in range(3):
            queue = ctx.Queue()
            child = ctx.Process(target=_child_query, args=(queue,))
            child.start()
            child.join(60)
            hung = child.is_alive()
            if hung:
                child.kill()
            assert not hung, "the child waited for a lock its parent's thread held at the fork"
            assert child.exitcode == 0
            assert queue.get(timeout=5) == (42, 1000)
        with tables.memory() as con:  # the parent's database is untouched
            assert con.sql("SELECT x FROM fork_parent").fetchall() == [(7,)]
    finally:
        stop.set()
        holder.join()
        with tables.memory() as con:  # other tests count this database's tables
            con.sql("DROP TABLE IF EXISTS fork_parent")


_FORK_AND_EXIT = """
import os, sys
from siscore_assets.core.storage import tables
with tables.memory() as con:  # the parent's database has started its threads
    con.sql("SELECT sum(range) FROM range(3000000)").fetchone()
pid = os.fork()
if pid == 0:  # a plain fork: the child ends through the interpreter's own shutdown
    with tables.memory() as con:
        assert con.sql("SELECT 41 + 1").fetchone()[0] == 42
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_plain_forked_child_exits_cleanly_after_using_its_own_database():
    done = subprocess.run(
        [sys.executable, "-c", _FORK_AND_EXIT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "child exit 0", (
        done.stderr
    )  # freeing the parent's copy aborted it
