"""Peak memory of building a country-year's `siscore_grid` rows: the year-wide pandas frames the
asset built before (patches index, every year's habitation, the merge and the map) against the
joins on 64-bit tile keys in numpy, spooled in batches, it runs now
(``defs/scoring/grid.py: spool_grid``).

A synthetic warehouse of N tiles x 4 years (`patches` and `habitation` rows only; the scores
are random: the tiles are never read) is written once; each way then runs in its own
subprocess, which reports its peak RSS (``ru_maxrss``) after the imports, so the figures
compare the row building alone.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.grid_rows_memory --tiles 400000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

YEARS = (2016, 2017, 2018, 2019)
CODE = "MEM"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, n: int) -> None:
    import numpy as np
    import pandas as pd

    from siscore_assets.core.imagery.patches import STATUS_OK
    from siscore_assets.defs.common.resources import Warehouse

    wh = Warehouse(database=str(db))
    rng = np.random.default_rng(0)
    for year in YEARS:
        x = rng.permutation(n)
        ids = pd.Series([f"14/{13000 + v % 2000}/{6000 + v // 2000}" for v in x])
        wh.write(
            "patches",
            pd.DataFrame(
                {
                    "country": CODE,
                    "year": year,
                    "tile_id": ids,
                    "z": 14,
                    "x": 13000 + x % 2000,
                    "y": 6000 + x // 2000,
                    "image_row": np.arange(n),
                    "status": STATUS_OK,
                    "stack_path": f"/nowhere/{year}",
                }
            ),
            {"country": CODE, "year": year},
        )
        hab = pd.DataFrame(
            {"country": CODE, "year": year, "tile_id": ids, "z": 14, "x": 13000 + x % 2000}
        ).assign(y=6000 + x // 2000)
        hab["inhabited"] = rng.random(n) < 0.4
        wh.write("habitation", hab, {"country": CODE, "year": year})


def landed(wh, raw, year: int) -> int:
    """The frames `siscore_grid` built before this change (its code, inlined)."""
    from siscore_assets.core.models import siscore

    index = wh.query(
        "SELECT tile_id, z, x, y FROM patches WHERE country = ? AND year = ? ORDER BY image_row",
        [CODE, year],
    ).assign(country=CODE, year=year)
    hab = wh.read("habitation", {"country": CODE, "year": year}, columns="tile_id, inhabited")
    ever: set = set()
    for y in YEARS:
        other = wh.read("habitation", {"country": CODE, "year": y})
        ever |= set(other.loc[other["inhabited"].fillna(False).astype(bool), "tile_id"])
    anyyear = hab.assign(
        inhabited=hab["inhabited"].fillna(False).astype(bool) | hab["tile_id"].isin(ever)
    )
    frame = siscore.siscore_table(index, raw, anyyear, zero_uninhabited=True)
    frame["inhabited"] = frame["tile_id"].map(hab.set_index("tile_id")["inhabited"])
    return wh.write("siscore_grid", frame, {"country": CODE, "year": year})


def spooled(wh, raw, year: int) -> int:
    from siscore_assets.defs.scoring import grid

    country = SimpleNamespace(code=CODE, years=list(YEARS))
    with wh.spool("siscore_grid", {"country": CODE, "year": year}) as rows:
        grid.spool_grid(wh, rows, country, year, raw, True)
        return rows.commit()


def run_one(way: str, db: Path, n: int) -> None:
    import numpy as np

    import siscore_assets.defs.scoring.grid  # noqa: F401 - imports before the baseline
    from siscore_assets.defs.common.resources import Warehouse

    wh = Warehouse(database=str(db))
    raw = np.random.default_rng(1).random(n)
    base = rss_mb()
    t = time.perf_counter()
    rows = (landed if way == "landed" else spooled)(wh, raw, YEARS[1])
    wall = time.perf_counter() - t
    print(json.dumps({"way": way, "rows": rows, "base_mb": base, "peak_mb": rss_mb(), "s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=400_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/siscore_grid_rows_memory"))
    ap.add_argument("--way", choices=("landed", "spooled"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    db = args.workdir / "warehouse.duckdb"
    if args.way:
        return run_one(args.way, db, args.tiles)
    args.workdir.mkdir(parents=True, exist_ok=True)
    marker = args.workdir / f"built_{args.tiles}"
    if not marker.exists():
        build(db, args.tiles)
        marker.write_text("")
    for way in ("landed", "spooled"):
        cmd = [sys.executable, "-m", "benchmarks.grid_rows_memory", "--tiles", str(args.tiles)]
        out = subprocess.run(
            [*cmd, "--workdir", str(args.workdir), "--way", way],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{way:8} {r['rows']:,} rows in {r['s']:.1f} s; peak RSS {r['peak_mb']:.0f} MB, "
            f"{r['peak_mb'] - r['base_mb']:.0f} MB above the process after its imports"
        )


if __name__ == "__main__":
    main()
