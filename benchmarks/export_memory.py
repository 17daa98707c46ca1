"""Peak memory of `siscore export` as the country grows: the streamed layer's memory should not
grow with the tiles.  Builds a synthetic warehouse of N tiles x 4 years (random scores), then
exports it in a fresh process per format and reports that process's peak RSS above its imports.

    python -m benchmarks.export_memory --tiles 100000 400000 [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

YEARS = (2016, 2017, 2018, 2019)
CHILD = """
import json, sys, time
from siscore_assets.core.maps import export as export_lib
from siscore_assets.core.storage import warehouse as wh
def hwm():  # this address space's peak (ru_maxrss would carry the parent's over fork + exec)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
db, out, fmt = sys.argv[1:4]
base = hwm()
t0 = time.perf_counter()
with wh.reader(db, ["siscore_grid"]) as conn:
    years = export_lib.stored_years(conn, "SYN")
    tiles, _ = export_lib.write_export(conn, "SYN", years, out, fmt)
peak = hwm()
print(json.dumps({"tiles": tiles, "imports_mb": base, "peak_mb": peak,
                  "seconds": time.perf_counter() - t0}))
"""


def build(db: Path, n: int) -> None:
    """N tiles in a square block, each year's siscore_grid partition."""
    from siscore_assets.core.storage import warehouse as wh

    side = int(np.ceil(np.sqrt(n)))
    k = np.arange(n)
    xs, ys = 13903 + k % side, 6163 + k // side
    ids = [f"14/{x}/{y}" for x, y in zip(xs, ys, strict=True)]
    rng = np.random.default_rng(0)
    for year in YEARS:
        grid = pd.DataFrame(
            {"country": "SYN", "year": year, "tile_id": ids, "z": 14, "x": xs, "y": ys,
             "raw_score": rng.random(n), "inhabited": rng.random(n) > 0.3}
        )  # fmt: skip
        grid["score"] = np.where(grid["inhabited"], grid["raw_score"], 0.0)
        wh.write(str(db), "siscore_grid", grid, {"country": "SYN", "year": year})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, nargs="+", default=[100_000, 400_000])
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="export_memory_"))
    for n in a.tiles:
        db = work / f"n{n}" / "warehouse.duckdb"
        if not db.parent.exists():
            db.parent.mkdir(parents=True)
            build(db, n)
        for fmt, suffix in (("gpkg", ".gpkg"), ("geoparquet", ".parquet")):
            out = db.parent / f"export{suffix}"
            got = subprocess.run(
                [sys.executable, "-c", CHILD, str(db), str(out), fmt],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            r = json.loads(got.stdout.strip().splitlines()[-1])
            print(
                f"{n:>7} tiles x {len(YEARS)} years, {fmt:<10}: peak RSS {r['peak_mb']:.0f} MB, "
                f"+{r['peak_mb'] - r['imports_mb']:.0f} MB over the imports, {r['seconds']:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
