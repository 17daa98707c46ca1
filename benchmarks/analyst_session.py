"""Analysts on the warehouse during a whole `siscore run`: one read-only session held open and
idle, one running a query in a loop; the run must succeed and the loop see only complete
partitions.

    python -m benchmarks.analyst_session [--country SYN] [--data DIR]

A first run fills DIR when it has no warehouse yet (not timed with analysts); then both analyst
processes open ``DIR/warehouse.duckdb`` read-only and `siscore run` re-materialises every
partition while they hold it.  Prints one JSON line: the run's exit code and wall time, the
loop's query count and errors, and every (table, year, rows) state the loop saw next to the
final row counts.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

LOOP = textwrap.dedent("""
    import json, os, sys, time, duckdb
    conn = duckdb.connect(sys.argv[1], read_only=True)
    sql = ("SELECT 'patches', year, count(*) FROM patches GROUP BY year UNION ALL "
           "SELECT 'siscore_grid', year, count(*) FROM siscore_grid GROUP BY year UNION ALL "
           "SELECT 'validation_grid', year, count(*) FROM validation_grid GROUP BY year")
    seen, queries, errors = set(), 0, []
    while not os.path.exists(sys.argv[2]):
        try:
            seen.update(conn.execute(sql).fetchall())
            queries += 1
        except Exception as exc:
            errors.append(str(exc)[:200])
        time.sleep(0.05)
    print(json.dumps({"queries": queries, "errors": errors, "seen": sorted(seen)}))
""")
HOLD = textwrap.dedent("""
    import os, sys, time, duckdb
    conn = duckdb.connect(sys.argv[1], read_only=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.2)
    print(conn.execute("SELECT count(*) FROM siscore_grid").fetchone()[0])
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--country", default="SYN")
    ap.add_argument("--data", default="data")
    args = ap.parse_args()
    data = Path(args.data).resolve()
    db = data / "warehouse.duckdb"
    env = {**os.environ, "SISCORE_DATA_ROOT": str(data), "PYTHONHASHSEED": "0"}
    env.pop("SISCORE_WAREHOUSE", None)
    run = [sys.executable, "-m", "siscore_assets.cli", "run", "--country", args.country]
    if not db.exists():
        subprocess.run(run, env=env, check=True, stdout=subprocess.DEVNULL)
    stop = data / ".analyst_stop"
    stop.unlink(missing_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db), str(stop)], stdout=subprocess.PIPE, text=True
    )
    looper = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(db), str(stop)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(2.0)
    t0 = time.perf_counter()
    proc = subprocess.run(run, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    stop.touch()
    loop = json.loads(looper.communicate(timeout=120)[0])
    held_rows = holder.communicate(timeout=120)[0].strip()
    stop.unlink(missing_ok=True)
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute(sys.argv[2]).fetchall())"
    )
    final_sql = (
        "SELECT 'patches', year, count(*) FROM patches GROUP BY year UNION ALL "
        "SELECT 'siscore_grid', year, count(*) FROM siscore_grid GROUP BY year UNION ALL "
        "SELECT 'validation_grid', year, count(*) FROM validation_grid GROUP BY year"
    )
    final = subprocess.run(
        [sys.executable, "-c", code, str(db), final_sql], capture_output=True, text=True
    ).stdout
    final_rows = {(t, y): n for t, y, n in ast.literal_eval(final)}
    torn = [s for s in loop["seen"] if final_rows.get((s[0], s[1])) != s[2]]
    print(
        json.dumps(
            {
                "country": args.country,
                "run_exit_code": proc.returncode,
                "run_wall_s": round(wall, 1),
                "run_stderr_tail": proc.stderr[-500:] if proc.returncode else "",
                "loop_queries": loop["queries"],
                "loop_errors": loop["errors"][:5],
                "states_seen": len(loop["seen"]),
                "states_not_final": torn,
                "held_session_rows_siscore_grid": held_rows,
                "final": sorted(final_rows.items()),
            }
        )
    )


if __name__ == "__main__":
    main()
