"""The scale benchmark's ingest stages only: `granules` and `patches` of the same link-farm
country (``benchmarks.scale``), each its own ``dagster asset materialize`` process, with its
wall time and the peak RSS / PSS of its process tree, beside the bare import every stage pays.

What ``benchmarks.scale`` would report for those two stages, in minutes instead of the whole
chain's hour at 400,000 tiles: the check that the year's listing and index never sit in memory
whole (peak RSS growth from 10,000 to 400,000 tiles).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.scale_ingest --tiles 400000 [--workers 2]
        [--workdir /tmp/siscore_scale_400000] [--json OUT] [--store-px 32]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from benchmarks.scale import (
    SAMPLE,
    StageResult,
    build_link_farm,
    machine,
    run_stage,
    run_startup,
    write_countries,
)

INGEST = (("granules", "granules", "yearly"), ("patches", "patches", "yearly"))


def run_ingest(
    n: int, workers: int, work: Path, sample: Path, store_px: int, block_zoom: int
) -> dict:
    """Build (or reuse) the link farm, run the import and the two ingest stages: the figures."""
    root, data, home = work / "country", work / "data", work / "dagster_home"
    built = build_link_farm(root, sample.resolve(), n)
    print(
        f"link farm {root}: {n:,} links " + ("reused" if built is None else f"built {built:.1f} s")
    )
    countries = work / "countries.yaml"
    accepted = write_countries(countries, root, store_px, block_zoom)
    for folder in (data, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("")
    (work / "logs").mkdir(exist_ok=True)
    load_start = os.getloadavg()
    results: list[StageResult] = [run_startup(work, countries, workers)]
    try:
        for name, select, kind in INGEST:
            results.append(run_stage(name, select, kind, workers, n, work, countries))
    finally:
        for folder in (data, home):
            shutil.rmtree(folder, ignore_errors=True)
    startup = results[0].peak_rss_bytes
    return {
        "machine": machine(),
        "tiles": n,
        "workers": workers,
        "store_px": store_px if accepted else 0,
        "block_zoom": block_zoom if accepted else None,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "stages": [asdict(r) for r in results],
        "peak_rss_bytes": max(r.peak_rss_bytes for r in results[1:]),
        "peak_over_startup_bytes": max(r.peak_rss_bytes for r in results[1:]) - startup,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, required=True, help="N: tiles of the one year")
    ap.add_argument("--workers", type=int, default=2, help="SISCORE_WORKERS of both stages")
    ap.add_argument("--workdir", type=Path, default=None, help="default /tmp/siscore_scale_<N>")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--store-px", type=int, default=32, help="source.store_px (0: native)")
    ap.add_argument("--block-zoom", type=int, default=9, help="source.block_zoom")
    ap.add_argument("--sample", type=Path, default=SAMPLE, help="the NK sample (link targets)")
    args = ap.parse_args()
    if args.tiles < 1 or args.workers < 1:
        ap.error("--tiles and --workers must be positive")
    work = (args.workdir or Path(f"/tmp/siscore_scale_{args.tiles}")).resolve()
    figures = run_ingest(
        args.tiles, args.workers, work, args.sample, args.store_px, args.block_zoom
    )
    m = figures["machine"]
    print(
        f"\nmachine: {m['cpu_count']} CPUs, {m['ram_bytes'] / 2**30:.1f} GiB RAM; load average "
        f"{figures['load_average_start'][0]:.1f} at start, {figures['load_average_end'][0]:.1f} "
        f"at end; N = {args.tiles:,}; {args.workers} worker(s)\n"
        "| stage | wall s | tiles/s (wall) | peak RSS GB | peak PSS GB |\n|---|---|---|---|---|"
    )
    for r in figures["stages"]:
        rate = f"{r['tiles_per_s']:.1f}" if r["tiles_per_s"] else ""
        print(
            f"| {r['stage']} | {r['wall_s']:.1f} | {rate} | {r['peak_rss_bytes'] / 1e9:.3f} | "
            f"{r['peak_pss_bytes'] / 1e9:.3f} |"
        )
    print(
        f"ingest peak {figures['peak_rss_bytes'] / 1e9:.3f} GB, "
        f"{figures['peak_over_startup_bytes'] / 1e6:+.0f} MB over the bare import"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
