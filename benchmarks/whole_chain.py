"""The whole chain at country size: a 4-year tile-folder country of N tiles a year, run by
``siscore run`` with the `cpu` recipe (PRK's entry: its settings, Stage-1 folders, districts and
covariate layers) from the tile folders to the rasters, change outputs and validation tables.

Reports the run's wall time, the peak RSS of its process tree (polled), the disk the data root
ends with (tile stores, scorer parts, rasters, warehouse) and, from the run's Dagster instance,
when each asset's last partition was materialised (minutes from the start): where the time went.

The country (`SCW`, 2016-2019) is a link farm: ``tiles/<year>/<y>_<x>.png`` symlinks, laid out
row-major in a near-square block at zoom 14 from the NK sample's smallest tile x, y, each pointing
at one of that year's real sample tiles, cyclically (so a year's clouds and haze are the
sample's), plus links to the sample's ``clusters``, ``pretrain`` and ``annotations`` folders.
Every stage trains or scores as it would for a real country of that size; the images repeat.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.whole_chain --tiles 32578 [--workdir DIR]
        [--json OUT] [--keep]

The data root (about 200 KB a tile-year of native tiles) is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.scale import (
    REPO,
    SAMPLE,
    SAMPLE_FOLDERS,
    package_versions,
    run_tree,
    terminate_as_interrupt,
)

CODE, ZOOM, YEARS = "SCW", 14, (2016, 2017, 2018, 2019)
COUNTRIES = REPO / "siscore_assets" / "config" / "countries.yaml"


def build_link_farm(root: Path, sample: Path, n: int) -> float:
    """``root/tiles/<year>/<y>_<x>.png`` -> that year's sample tiles, cyclically; seconds."""
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_FOLDERS:
        link = root / name
        if not link.is_symlink():
            link.symlink_to((sample / name).resolve(), target_is_directory=True)
    every = sorted((sample / "tiles").glob("*/*.png"))
    if not every:
        raise SystemExit(f"no tiles in {sample / 'tiles'}/<year>/*.png")
    ys, xs = zip(*(map(int, p.stem.split("_")) for p in every))
    x0, y0, nx = min(xs), min(ys), math.ceil(math.sqrt(n))
    for year in YEARS:
        folder = root / "tiles" / str(year)
        if folder.is_dir() and sum(1 for _ in folder.iterdir()) == n:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        targets = [str(p.resolve()) for p in sorted((sample / "tiles" / str(year)).glob("*.png"))]
        for i in range(n):
            os.symlink(targets[i % len(targets)], f"{folder}/{y0 + i // nx}_{x0 + i % nx}.png")
    return time.perf_counter() - t0


def country_entry(root: Path) -> dict:
    """PRK's entry, its tile folder replaced by the link farm (layer paths made absolute)."""
    entry = yaml.safe_load(COUNTRIES.read_text())["countries"]["PRK"]

    def absolute(value):
        if isinstance(value, str) and value.startswith("../"):
            return str((REPO / value).resolve())
        if isinstance(value, dict):
            return {k: absolute(v) for k, v in value.items()}
        return value

    entry = {k: absolute(v) for k, v in entry.items()}
    entry["name"] = "Whole-chain benchmark (links to the NK sample's tiles)"
    entry["years"] = list(YEARS)
    entry["source"] = {**entry["source"], "root": str(root)}
    entry["source"].pop("root_env", None)
    return entry


def materialised_at(home: Path, started: float) -> dict[str, float]:
    """Minutes from ``started`` to each asset's last materialisation in the run's instance."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        out = {}
        for key in instance.get_asset_keys():
            records = instance.fetch_materializations(key, limit=1).records
            if records:
                out[key.to_user_string()] = round((records[0].timestamp - started) / 60, 2)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    terminate_as_interrupt()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, required=True, help="N: tiles of each year")
    ap.add_argument("--workdir", type=Path, default=None, help="default /tmp/siscore_chain_<N>")
    ap.add_argument("--workers", type=int, default=2, help="$SISCORE_WORKERS")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--keep", action="store_true", help="keep the data root")
    ap.add_argument("--sample", type=Path, default=SAMPLE, help="the NK sample folder")
    args = ap.parse_args()
    work = (args.workdir or Path(f"/tmp/siscore_chain_{args.tiles}")).resolve()
    farm = work / "country"
    link_s = build_link_farm(farm, args.sample, args.tiles)
    countries = work / "countries.yaml"
    countries.write_text(
        yaml.safe_dump({"default": CODE, "countries": {CODE: country_entry(farm)}}, sort_keys=False)
    )
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "SISCORE_COUNTRIES": str(countries),
        "SISCORE_DATA_ROOT": str(data),
        "SISCORE_WAREHOUSE": str(data / "warehouse.duckdb"),
        "SISCORE_WORKERS": str(args.workers),
    }
    env.pop("DAGSTER_HOME", None)  # the data root's own instance
    print(f"{args.tiles:,} tiles x {len(YEARS)} years, link farm in {link_s:.1f} s; running ...")
    started = time.time()
    siscore = str(Path(sys.executable).with_name("siscore"))
    rc, wall, peak, pss = run_tree([siscore, "run", "--country", CODE], env, work / "run")
    if rc:
        tail = (work / "run.err").read_text(errors="replace")[-4000:]
        raise SystemExit(f"siscore run failed (exit {rc}); stderr tail:\n{tail}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "git": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
            ).stdout.strip(),
            "packages": package_versions(),
        },
        "tiles_per_year": args.tiles,
        "years": list(YEARS),
        "tile_years": args.tiles * len(YEARS),
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "tile_years_per_s": round(args.tiles * len(YEARS) / wall, 1),
        "peak_rss_bytes": peak,
        "peak_pss_bytes": pss,
        "data_root_bytes": disk_bytes(data),
        "asset_done_min": materialised_at(data / "dagster", started),
        "summary": (work / "run.out").read_text(errors="replace")[-3000:],
    }
    disk = result["data_root_bytes"] / 1e9
    print(
        f"wall {wall / 60:.1f} min ({result['tile_years_per_s']} tile-years/s), peak RSS "
        f"{peak / 1e9:.2f} GB (PSS {pss / 1e9:.2f}), data root {disk:.1f} GB"
    )
    for asset, minutes in result["asset_done_min"].items():
        print(f"  {minutes:7.2f} min  {asset}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
