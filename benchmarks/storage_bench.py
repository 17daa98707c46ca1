"""Storage benchmark: what one partition write and read cost, and 8 writer processes at once
against the same writes one after another.

    python -m benchmarks.storage_bench [--rows 20000] [--writes 3]

Prints one JSON line (seconds).  The parallel figure uses real processes
(``siscore_assets_tests/core/storage/workers.py``), each replacing its own partition of one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from siscore_assets.core.storage import warehouse
from siscore_assets_tests.core.storage.workers import frame

ROOT = Path(__file__).resolve().parents[1]


def _procs(db: Path, years: range, rows: int, writes: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "siscore_assets_tests.core.storage.workers",
                "write",
                str(db),
                "t",
                str(y),
                str(rows),
                str(writes),
            ],
            env=env,
        )
        for y in years
    ]
    if any(p.wait() for p in procs):
        raise SystemExit("a writer failed")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--writes", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="siscore-storage-") as tmp:
        db = Path(tmp) / "warehouse.duckdb"
        small = frame(2000, 1600, 0)
        warehouse.write(db, "t", small, {"country": "SYN", "year": 2000})  # creates the table
        t0 = time.perf_counter()
        for i in range(20):
            warehouse.write(db, "t", frame(2000, 1600, i), {"country": "SYN", "year": 2000})
        write_s = (time.perf_counter() - t0) / 20
        t0 = time.perf_counter()
        for _ in range(20):
            warehouse.read(db, "t", {"country": "SYN", "year": 2000})
        read_s = (time.perf_counter() - t0) / 20
        parallel = _procs(db, range(2001, 2009), args.rows, args.writes)
        one_proc = _procs(Path(tmp) / "seq.duckdb", range(2001, 2002), args.rows, args.writes * 8)
        counts = warehouse.query(db, "SELECT count(*) AS n FROM t")["n"].iloc[0]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
                "write_1600_rows_s": round(write_s, 4),
                "read_1600_rows_s": round(read_s, 4),
                "rows_per_write": args.rows,
                "parallel_8_procs_x_writes_s": round(parallel, 2),
                "one_proc_same_writes_s": round(one_proc, 2),
                "rows_after": int(counts),
            }
        )
    )


if __name__ == "__main__":
    main()
