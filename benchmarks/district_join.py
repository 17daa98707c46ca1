"""Time and peak memory of assigning a country's tiles to districts: ``tile_districts`` (the
census link's and the indicators' join) and ``aggregate_by_district`` (`district_siscore`'s
centroid and area-weighted figures), on the paper's real 178 North Korean district polygons.

N zoom-14 tiles are drawn (seeded, with repeats past the ~200,000 of the layer's bounding box)
from the box around the districts, so about a third fall inside one, as a country's tiles
around a coast or border do.  Each function runs in its own subprocess, which reports its wall
time and its peak RSS above what the imports and the inputs took (``ru_maxrss``).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.district_join --tiles 400000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

LAYER = (
    Path(__file__).resolve().parents[1].parent / "shared/data/nk_layers/NK_district_statistics.shp"
)
ZOOM = 14


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(n: int, layer_path: Path):
    import mercantile
    import numpy as np
    import pandas as pd

    from siscore_assets.core.analysis import districts

    layer = districts.read_polygons(layer_path).to_crs(districts.CRS_3857)
    layer["district_id"] = np.arange(len(layer))
    minx, miny, maxx, maxy = layer.total_bounds
    nw = mercantile.tile(*mercantile.lnglat(minx, maxy), ZOOM)
    se = mercantile.tile(*mercantile.lnglat(maxx, miny), ZOOM)
    xs, ys = np.meshgrid(np.arange(nw.x, se.x + 1), np.arange(nw.y, se.y + 1))
    pick = np.random.default_rng(0).choice(xs.size, n, replace=n > xs.size)
    tiles = pd.DataFrame({"z": ZOOM, "x": xs.ravel()[pick], "y": ys.ravel()[pick]})
    tiles["score"] = np.random.default_rng(1).random(n)
    return tiles, layer


def one(which: str, n: int, layer_path: Path) -> dict:
    from siscore_assets.core.analysis import districts

    tiles, layer = inputs(n, layer_path)
    before = rss_mb()
    t0 = time.perf_counter()
    if which == "tile_districts":
        where = districts.tile_districts(tiles, layer)
        assigned = int((where >= 0).sum())
    else:
        out = districts.aggregate_by_district(tiles, ["score"], layer)
        assigned = int(out.attrs["n_assigned"])
    return {
        "function": which,
        "tiles": n,
        "districts": len(layer),
        "assigned": assigned,
        "seconds": round(time.perf_counter() - t0, 2),
        "peak_mb_above_inputs": round(rss_mb() - before, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", type=int, default=400_000)
    ap.add_argument("--layer", type=Path, default=LAYER)
    ap.add_argument("--only", choices=["tile_districts", "aggregate_by_district"])
    args = ap.parse_args()
    if args.only:
        print(json.dumps(one(args.only, args.tiles, args.layer)))
        return
    for which in ("tile_districts", "aggregate_by_district"):
        cmd = [sys.executable, "-m", "benchmarks.district_join", "--only", which]
        cmd += ["--tiles", str(args.tiles), "--layer", str(args.layer)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
