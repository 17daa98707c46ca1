"""A large score file streams: 633 x 633 = 400,689 tiles (the paper's other countries) x 4 years
written as a CSV (1,602,756 rows), then one year read back with `core/analysis/score_source.py`
(every row checked, duplicates found from int64 keys) as `siscore_grid` reads it; prints the rows,
seconds and the process's peak resident memory.  Run: `python -m benchmarks.score_file_stream
[OUT.csv]` (default: a temporary folder; the file is kept and reused)."""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.analysis import score_source

YEARS = [2016, 2017, 2018, 2019]
SIDE = 633


def write(path: Path) -> None:
    xs, ys = np.meshgrid(np.arange(SIDE) + 13000, np.arange(SIDE) + 6000)
    ids = pd.Series([f"14/{x}/{y}" for x, y in zip(xs.ravel(), ys.ravel(), strict=True)])
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        f.write("tile_id,year,score\n")
        for year in YEARS:
            scores = rng.uniform(0, 1, len(ids)).round(6)
            frame = pd.DataFrame({"tile_id": ids, "year": year, "score": scores})
            frame.to_csv(f, header=False, index=False)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "big.csv"
    if not path.exists():
        write(path)
    t0 = time.perf_counter()
    frame = score_source.read_year(path, 2018, zoom=14, years=YEARS)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"file {path} ({path.stat().st_size / 2**20:.0f} MB, {SIDE * SIDE * len(YEARS)} rows): "
        f"year 2018 = {len(frame)} rows in {seconds:.1f} s, peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
