"""Many writer processes, readers at any time, writers killed mid-write: what the storage
layout promises, tested with real processes (``workers.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from siscore_assets.core.storage import warehouse
from siscore_assets_tests.core.storage.workers import frame

pytestmark = pytest.mark.xdist_group("storage_processes")

ROOT = Path(__file__).resolve().parents[3]
CHECK = (
    "SELECT year, count(*) AS n, count(DISTINCT version) AS versions FROM t "
    "GROUP BY year ORDER BY year"
)


def _worker(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "siscore_assets_tests.core.storage.workers", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _complete(rows: list[tuple], n: int) -> None:
    """Every partition a reader sees is whole: n rows, all of one write."""
    for year, count, versions in rows:
        assert (count, versions) == (n, 1), f"year {year}: {count} rows of {versions} writes"


def test_eight_processes_write_eight_partitions_while_readers_query(tmp_path):
    """8 writer processes replace 8 partitions of one table 3 times each, at once; the pipeline's
    reader and an analyst holding the catalog open query in a loop the whole time: no lock
    error, only complete partitions, and the right rows at the end."""
    db, n = tmp_path / "warehouse.duckdb", 20_000
    warehouse.write(db, "t", frame(2000, n, 0), {"country": "SYN", "year": 2000})
    years = range(2001, 2009)
    with duckdb.connect(str(db), read_only=True) as analyst:
        procs = [_worker("write", db, "t", y, n, 3) for y in years]
        reads = 0
        while any(p.poll() is None for p in procs) or reads == 0:
            _complete(warehouse.query(db, CHECK).itertuples(index=False), n)
            _complete(analyst.execute(CHECK).fetchall(), n)
            reads += 1
        outputs = [p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
        assert not any("lock" in err.lower() for _, err in outputs)
        final = analyst.execute(CHECK).fetchall()
    assert final == [(y, n, 1) for y in range(2000, 2009)]
    assert reads > 1
    assert not list((tmp_path / "warehouse" / "t").glob(".*"))  # no temporary file left


def test_a_writer_killed_mid_write_leaves_the_previous_partition_intact(tmp_path):
    """SIGKILL while a writer is inside a partition write (its temporary file exists): the
    partition still holds one complete earlier write, and the next write succeeds."""
    db, n = tmp_path / "warehouse.duckdb", 400_000
    warehouse.write(db, "t", frame(2016, n, 999), {"country": "SYN", "year": 2016})
    folder = tmp_path / "warehouse" / "t"
    proc = _worker("loop", db, "t", 2016, n)
    deadline, caught = time.monotonic() + 120, False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.endswith(".tmp") for p in folder.iterdir()):
                os.kill(proc.pid, signal.SIGKILL)
                caught = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert caught and proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert any(p.name.endswith(".tmp") for p in folder.iterdir())  # it died mid-write
    _complete(warehouse.query(db, CHECK).itertuples(index=False), n)
    with duckdb.connect(str(db), read_only=True) as analyst:
        _complete(analyst.execute(CHECK).fetchall(), n)
    warehouse.write(db, "t", frame(2016, 10, 5), {"country": "SYN", "year": 2016})
    assert warehouse.query(db, CHECK).values.tolist() == [[2016, 10, 1]]


def test_a_table_that_appears_while_an_analyst_holds_the_catalog_is_shown_on_reconnect(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    warehouse.write(db, "t", frame(2016, 5, 0), {"country": "SYN", "year": 2016})
    with duckdb.connect(str(db), read_only=True) as analyst:
        warehouse.write(db, "fresh", frame(2016, 3, 0), {"country": "SYN", "year": 2016})
        assert analyst.execute("SELECT count(*) FROM t").fetchone() == (
            5,
        )  # never blocked, never broken
        code = (
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT count(*) FROM fresh').fetchone()[0])"
        )
        other = subprocess.run(
            [sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True
        )
    assert other.stdout.strip() == "3"  # a new session sees it while the first still holds the file
