"""Scale benchmark: wall time, tiles/s and process-tree peak memory of every stage of the chain,
for one year of a tile-folder country of N real-format 256 px tiles; and the scorer's bare
forward-pass throughput, to which the end-to-end `siscore_grid` rate is compared.

The country (`SCL`, one year, 2019) is a link farm: ``tiles/2019/<y>_<x>.png`` symlinks, laid out
row-major in a near-square block at zoom 14 from the NK sample's smallest tile x, y, pointing in
turn at the sample's real tiles (every year's), plus links to the sample's ``clusters``,
``pretrain`` and ``annotations`` folders.  Each stage is its own
``dagster asset materialize`` subprocess (in-process executor), so its peak RSS (the subprocess and
all its descendants, summed, polled every 0.15 s) is its own.  The per-tile split stages
(patches, habitation, siscore_grid) run once per ``--workers`` value ($SISCORE_WORKERS); the
others once, at the largest.  A first row times a bare Python importing the definitions: the
fixed cost every stage pays, which the slopes (s per 1,000 tiles) are also given net of.  The bare
throughput: the trained scorer on the CPU, random batches of 256 at its input size, W spawned
processes of one torch thread each, ~``--bare-seconds`` after warm-up.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.scale --tiles 500 [--workers 1,2]
        [--workdir /tmp/siscore_scale_500] [--keep] [--json OUT] [--store-px 32]
    ... --recipe cpu [--checkpoint PRK's scorer.pt]: the cpu recipe (benchmarks/scale_recipe.py)
    python -m benchmarks.scale_ingest --tiles N: the `granules` and `patches` stages only

The link farm is reused across runs (rebuilt only when it does not hold exactly N links); the
data and Dagster folders are removed at the end unless ``--keep``.  Exits non-zero, naming the
stage and the tail of its stderr, when a stage fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "nk_sample"
CODE, YEAR, ZOOM = "SCL", 2019, 14
YEARLY_KEY, COUNTRY_KEY = f"{CODE}|{YEAR}", CODE
SAMPLE_FOLDERS = ("clusters", "pretrain", "annotations")
SPLIT = ("patches", "habitation", "siscore_grid")  # per-tile stages, run at every worker count
BATCH = 256  # score_images' batch size
POLL_S = 0.15

# (stage, --select, partition kind) in dependency order: the minimal chain to siscore_grid.
# Multi-assets (can_subset=False) are selected whole.  guided_pogs / proxies are upstream of
# annotator_pogs only nominally: with a POG folder and no guided annotator the body reads
# neither, so they are left out.  annotation_inputs registers the annotators' partitions, and
# the "annotator" stage runs each of them.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("granules", "granules", "yearly"),
    ("patches", "patches", "yearly"),
    ("pretrain_set", "pretrain_set", "country"),
    ("habitation_model", "habitation_model", "country"),
    ("habitation", "habitation", "yearly"),
    ("clusters", "clusters,cluster_members", "country"),
    ("annotation_inputs", "annotation_inputs", "country"),
    ("annotator_pogs", "annotator_pogs,annotator_ranks", "annotator"),
    ("ensemble_pog", "ensemble_pog,annotator_weights", "country"),
    ("scorer", "scorer", "country"),
    ("siscore_grid", "siscore_grid", "yearly"),
)


@dataclass
class StageResult:
    stage: str
    workers: int
    wall_s: float
    peak_rss_bytes: int
    tiles_per_s: float | None
    peak_pss_bytes: int = 0  # proportional set size: shared pages counted once over the tree
    inner_s: float | None = None  # the stage's own block work, from its log line
    inner_tiles_per_s: float | None = None


# --- the country ----------------------------------------------------------------------------


def sample_tiles(sample: Path) -> tuple[list[Path], int, int]:
    """Every tile file of the sample (all years; the link targets) and its smallest x and y."""
    files = sorted(p.resolve() for p in (sample / "tiles").glob("*/*.png"))
    if not files:
        raise SystemExit(f"no tiles in {sample / 'tiles'}/<year>/*.png")
    ys, xs = zip(*(map(int, p.stem.split("_")) for p in files))  # stem = <y>_<x>
    return files, min(xs), min(ys)


def build_link_farm(root: Path, sample: Path, n: int) -> float | None:
    """``root/tiles/<YEAR>/<y>_<x>.png`` -> the sample's tiles, cyclically; seconds spent (None:
    the folder already held exactly ``n`` links and is reused)."""
    year_dir = root / "tiles" / str(YEAR)
    root.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_FOLDERS:
        link, target = root / name, (sample / name).resolve()
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    if year_dir.is_dir():
        with os.scandir(year_dir) as it:
            if sum(1 for e in it if e.is_symlink() and e.name.endswith(".png")) == n:
                return None
        shutil.rmtree(year_dir)
    t0 = time.perf_counter()
    year_dir.mkdir(parents=True)
    files, x0, y0 = sample_tiles(sample)
    targets = [str(p) for p in files]
    nx = math.ceil(math.sqrt(n))
    base = str(year_dir)
    for i in range(n):
        os.symlink(targets[i % len(targets)], f"{base}/{y0 + i // nx}_{x0 + i % nx}.png")
    return time.perf_counter() - t0


def country_entry(root: Path, store_px: int, block_zoom: int) -> dict:
    """SCL: the PRK entry's tile-folder layout and Stage-1 folders, one year, default models."""
    source: dict = {
        "kind": "tile_folder",
        "root": str(root),
        "tiles": "tiles",
        "max_cloud_fraction": 0.15,
    }
    if store_px:
        source.update(store_px=store_px, block_zoom=block_zoom)
    return {
        "name": "Scale benchmark (links to the NK sample's tiles)",
        "zoom": ZOOM,
        "years": [YEAR],
        "source": source,
        "clusters": "{root}/clusters",
        "pretrain": "{root}/pretrain",
        "annotations": "{root}/annotations",
        "districts": "none",
        "proxies": "none",
        "covariates": "none",
        "models": {"seed": 0, "folder_urban_clusters": 11},
    }


def write_countries(path: Path, root: Path, store_px: int, block_zoom: int) -> bool:
    """Write the countries file; False when the installed loader refuses store_px / block_zoom
    (the file is then rewritten without them)."""
    from siscore_assets.core.countries import CountryConfigError, load_countries

    def write(px: int) -> None:
        path.write_text(
            yaml.safe_dump(
                {"default": CODE, "countries": {CODE: country_entry(root, px, block_zoom)}},
                sort_keys=False,
            )
        )

    write(store_px)
    try:
        load_countries(path)
        return True
    except CountryConfigError as exc:
        if not store_px:
            raise
        print(f"note: the countries loader refuses store_px / block_zoom ({exc}); left out")
    write(0)
    load_countries(path)
    return False


# --- stages -----------------------------------------------------------------------------------


def tree_memory(proc: psutil.Process) -> tuple[int, int]:
    """(RSS, PSS) of a process and all its descendants, summed.  Summed RSS counts a shared
    library's pages once per process; PSS splits them among the processes mapping them."""
    rss = pss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            full = p.memory_full_info()
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
    return rss, pss


def end_tree(proc: psutil.Process) -> None:
    """Kill a process and every process below it, and wait for them."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def terminate_as_interrupt() -> None:
    """SIGTERM (``kill``, a time limit) raises KeyboardInterrupt like Ctrl-C, so an interrupted
    benchmark ends the stage it is running (:func:`run_tree`) instead of orphaning it."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def run_tree(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int, int]:
    """Run ``cmd`` (output to ``log``.*): exit code, wall seconds, peak tree RSS, peak PSS.
    Interrupted (Ctrl-C, or SIGTERM after :func:`terminate_as_interrupt`), it kills the
    command's whole process tree before it re-raises: a run left behind would go on writing
    into the work folder and load the machine the next figure is measured on."""
    with open(log.with_suffix(".out"), "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err)
        proc, peak, peak_pss = psutil.Process(child.pid), 0, 0
        try:
            while child.poll() is None:
                rss, pss = tree_memory(proc)
                peak, peak_pss = max(peak, rss), max(peak_pss, pss)
                time.sleep(POLL_S)
        except BaseException:
            end_tree(proc)
            raise
        wall = time.perf_counter() - t0
    return child.returncode, wall, peak, peak_pss


RATE_LINE = re.compile(
    r"(patches|habitation|siscore_grid): (\d+) tiles in ([\d.]+) s = ([\d.]+) tiles/s"
)


def inner_rate(log: Path, stage: str) -> tuple[float | None, float | None]:
    """(seconds, tiles/s) of the stage's own block work, from the line the asset logs."""
    text = log.with_suffix(".err").read_text(errors="replace") + log.with_suffix(".out").read_text(
        errors="replace"
    )
    hits = [m for m in RATE_LINE.finditer(text) if m.group(1) == stage]
    return (float(hits[-1].group(3)), float(hits[-1].group(4))) if hits else (None, None)


def stage_env(work: Path, countries: Path, workers: int) -> dict[str, str]:
    data = work / "data"
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "SISCORE_COUNTRIES": str(countries),
        "SISCORE_DATA_ROOT": str(data),
        "SISCORE_WAREHOUSE": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(work / "dagster_home"),
        "SISCORE_EXECUTOR": "in_process",
        "SISCORE_WORKERS": str(workers),
        "SISCORE_WORKER_PROCESSES": os.environ.get("SISCORE_WORKER_PROCESSES", "0"),
    }


def fail(what: str, rc: int, log: Path) -> None:
    tail = log.with_suffix(".err").read_text(errors="replace")[-4000:]
    raise SystemExit(
        f"stage {what} failed (exit {rc}); stderr tail ({log.with_suffix('.err')}):\n{tail}"
    )


def annotator_keys(work: Path) -> list[str]:
    """The annotator partitions annotation_inputs registered in the benchmark's instance."""
    from dagster import DagsterInstance  # here: the benchmark process itself stays light

    with DagsterInstance.from_config(str(work / "dagster_home")) as instance:
        return [
            k
            for k in instance.get_dynamic_partitions("country_annotator")
            if k.startswith(f"{CODE}|")
        ]


def run_stage(
    name: str, select: str, kind: str, workers: int, n: int, work: Path, countries: Path
) -> StageResult:
    keys = (
        [YEARLY_KEY]
        if kind == "yearly"
        else annotator_keys(work)
        if kind == "annotator"
        else [COUNTRY_KEY]
    )
    wall, peak, pss = 0.0, 0, 0
    log = work / "logs" / f"{name}_w{workers}"
    for key in keys:  # one run per partition (an annotator stage: one per annotator)
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "siscore_assets.definitions",
            "--select",
            select,
            "--partition",
            key,
        ]
        rc, key_wall, key_peak, key_pss = run_tree(cmd, stage_env(work, countries, workers), log)
        if rc:
            fail(f"{name} (workers {workers}, partition {key})", rc, log)
        wall, peak, pss = wall + key_wall, max(peak, key_peak), max(pss, key_pss)
    inner_s, inner_tps = inner_rate(log, name) if name in SPLIT else (None, None)
    res = StageResult(
        name, workers, wall, peak, n / wall if kind == "yearly" else None, pss, inner_s, inner_tps
    )
    rate = f"{res.tiles_per_s:8.1f} tiles/s" if res.tiles_per_s else " " * 16
    inner = f"  (block work {inner_tps:.1f} tiles/s)" if inner_tps else ""
    print(
        f"  {name:<18} w={workers}  {wall:8.1f} s  {rate}  "
        f"peak {peak / 1e9:6.2f} GB (PSS {pss / 1e9:.2f}){inner}",
        flush=True,
    )
    return res


def run_startup(work: Path, countries: Path, workers: int) -> StageResult:
    """The fixed cost every stage pays: a Python importing the definitions (torch, Dagster)."""
    log = work / "logs" / "startup"
    rc, wall, peak, pss = run_tree(
        [sys.executable, "-c", "import siscore_assets.definitions"],
        stage_env(work, countries, workers),
        log,
    )
    if rc:
        fail("startup (import siscore_assets.definitions)", rc, log)
    print(
        f"  {'startup (import)':<18} w={workers}  {wall:8.1f} s  {'':16}  "
        f"peak {peak / 1e9:6.2f} GB",
        flush=True,
    )
    return StageResult("startup (import definitions)", workers, wall, peak, None, pss)


# --- bare forward pass ------------------------------------------------------------------------

_barrier = None


def _init_worker(barrier) -> None:
    global _barrier
    _barrier = barrier


def _forward_worker(args: tuple[str, float]) -> tuple[int, float, float]:
    """One process: (images scored, start, end) of ~``seconds`` of batches after 3 warm-up ones."""
    import torch

    from siscore_assets.core.models.scorer import load_scorer

    path, seconds = args
    torch.set_num_threads(1)
    model = load_scorer(path, device="cpu")
    cfg = model.config
    channels = 1 if getattr(cfg, "grayscale", False) else 3
    x = torch.rand(BATCH, channels, cfg.input_px, cfg.input_px).contiguous(
        memory_format=torch.channels_last
    )
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        _barrier.wait()
        t0 = time.time()
        done = 0
        while time.time() - t0 < seconds:
            model(x)
            done += BATCH
        t1 = time.time()
    return done, t0, t1


def bare_throughput(checkpoint: Path, workers: int, seconds: float) -> float:
    """Images/s of W single-thread processes running the scorer side by side (total / wall)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers, timeout=300)  # every worker blocks in it: one task per process
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        parts = list(pool.map(_forward_worker, [(str(checkpoint), seconds)] * workers))
    images = sum(p[0] for p in parts)
    return images / (max(p[2] for p in parts) - min(p[1] for p in parts))


# --- report -----------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "packages": package_versions(),
    }


#: The installed packages a figure depends on: setup takes the registries' current releases, and
#: the imports' own memory moved from 1.16 to 1.50 GB between the setups of 12-05 and 12-06.
MEASURED_PACKAGES = ("torch", "torchvision", "numpy", "dagster", "duckdb", "dask", "pandas")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in MEASURED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def stage_table(results: list[StageResult]) -> tuple[list[StageResult], StageResult]:
    """Print every stage's row; returns the stages (startup left out) and the peak one."""
    print(
        "| stage | workers | wall s | tiles/s (wall) | block work s | tiles/s (block work) "
        "| peak RSS GB | peak PSS GB |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        rate = f"{r.tiles_per_s:.1f}" if r.tiles_per_s else ""
        inner = f"{r.inner_s:.1f} | {r.inner_tiles_per_s:.1f}" if r.inner_tiles_per_s else " | "
        print(
            f"| {r.stage} | {r.workers} | {r.wall_s:.1f} | {rate} | {inner} | "
            f"{r.peak_rss_bytes / 1e9:.2f} | "
            f"{r.peak_pss_bytes / 1e9:.2f} |"
        )
    stages = [r for r in results if not r.stage.startswith("startup")]
    peak = max(stages, key=lambda r: r.peak_rss_bytes)
    print(
        f"\nprocess-tree peak over all stages: {peak.peak_rss_bytes / 1e9:.2f} GB "
        f"({peak.stage}, w={peak.workers})"
    )
    return stages, peak


def report(
    n: int, workers: list[int], results: list[StageResult], bare: dict[int, float], info: dict
) -> dict:
    m = machine()
    print(
        f"\nmachine: {m['platform']} ({m['processor']}), {m['cpu_count']} CPUs, "
        f"{m['ram_bytes'] / 2**30:.1f} GiB RAM, Python {m['python']}"
    )
    print(
        f"N = {n:,} tiles ({CODE}|{YEAR}, zoom {ZOOM}, 256 px PNG links); store_px in source: "
        f"{info['store_px'] or 'no'}; local workers as {info.get('worker_kind', 'threads')}\n"
    )
    stages, peak = stage_table(results)
    startup = next((r.wall_s for r in results if r.stage.startswith("startup")), 0.0)
    wall = {(r.stage, r.workers): r.wall_s for r in stages}
    speedup: dict[str, dict[int, float]] = {}
    slope: dict[str, dict[int, dict[str, float]]] = {}
    base = min(workers)
    for s in SPLIT:
        speedup[s] = {w: wall[(s, base)] / wall[(s, w)] for w in workers if w != base}
        slope[s] = {
            w: {
                "s_per_1k_tiles": 1000 * wall[(s, w)] / n,
                "s_per_1k_tiles_net_of_startup": 1000 * max(wall[(s, w)] - startup, 0.0) / n,
            }
            for w in workers
        }
    for w in workers:
        if w == base:
            continue
        print(
            f"speed-up of {w} workers over {base}: "
            + ", ".join(f"{s} {speedup[s][w]:.2f}x" for s in SPLIT)
        )
    print(
        f"slope (s per 1,000 tiles; net of the {startup:.1f} s startup in brackets): "
        + "; ".join(
            f"{s} "
            + ", ".join(
                f"w={w} {slope[s][w]['s_per_1k_tiles']:.2f} "
                f"({slope[s][w]['s_per_1k_tiles_net_of_startup']:.2f})"
                for w in workers
            )
            for s in SPLIT
        )
    )
    grid = {r.workers: r.tiles_per_s for r in stages if r.stage == "siscore_grid"}
    inner = {r.workers: r.inner_tiles_per_s for r in stages if r.stage == "siscore_grid"}
    inner_ratio = {w: (inner[w] / bare[w]) if inner.get(w) else None for w in workers}
    block_speedup = {
        s: {
            w: next(r.inner_s for r in stages if r.stage == s and r.workers == base)
            / next(r.inner_s for r in stages if r.stage == s and r.workers == w)
            for w in workers
            if w != base
        }
        for s in SPLIT
        if all(r.inner_s for r in stages if r.stage == s)
    }
    for w in workers:
        if w != base:
            print(
                f"speed-up of {w} workers over {base}, block work only: "
                + ", ".join(f"{s} {v[w]:.2f}x" for s, v in block_speedup.items())
            )
    ratio = {w: grid[w] / bare[w] for w in workers}
    net = {w: n / max(wall[("siscore_grid", w)] - startup, 1e-9) / bare[w] for w in workers}
    for w in workers:
        print(
            f"scorer bare forward pass, {w} x 1-thread process(es), batch {BATCH}: "
            f"{bare[w]:.0f} images/s; "
            f"siscore_grid end to end {grid[w]:.1f} tiles/s = {ratio[w]:.3f} of it "
            f"({net[w]:.3f} net of the startup; "
            f"block work {inner_ratio[w] or float('nan'):.3f} of it)"
        )
    return {
        "machine": m,
        "tiles": n,
        "country": CODE,
        "year": YEAR,
        "workers": workers,
        **info,
        "stages": [asdict(r) for r in results],
        "peak_rss_bytes": peak.peak_rss_bytes,
        "peak_stage": peak.stage,
        "startup_s": startup,
        "speedup": speedup,
        "slope": slope,
        "bare_forward_images_per_s": bare,
        "siscore_grid_over_bare": ratio,
        "siscore_grid_net_of_startup_over_bare": net,
        "siscore_grid_block_work_over_bare": inner_ratio,
        "block_work_speedup": block_speedup,
        "peak_pss_bytes": max(r.peak_pss_bytes for r in stages),
    }


def main() -> None:
    terminate_as_interrupt()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, required=True, help="N: tiles of the one year")
    ap.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts for the split stages"
    )
    ap.add_argument("--workdir", type=Path, default=None, help="default /tmp/siscore_scale_<N>")
    ap.add_argument("--keep", action="store_true", help="keep the data and Dagster folders")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument(
        "--store-px",
        type=int,
        default=32,
        help="source.store_px (0: leave store_px / block_zoom out)",
    )
    ap.add_argument(
        "--block-zoom", type=int, default=9, help="source.block_zoom, written with store_px"
    )
    ap.add_argument(
        "--bare-seconds", type=float, default=10.0, help="timed forward passes per worker count"
    )
    ap.add_argument(
        "--sample", type=Path, default=SAMPLE, help="the NK sample folder (link targets)"
    )
    ap.add_argument(
        "--processes",
        action="store_true",
        help="local workers as Dask processes (default: threads of the run's process)",
    )
    ap.add_argument("--recipe", choices=("small", "cpu"), default="small", help="cpu: see below")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "data/PRK/models/scorer.pt")
    ap.add_argument(
        "--landed-rows", type=int, default=2048, help="cpu: rows the landed path scores"
    )
    ap.add_argument("--quick", action="store_true", help="cpu: parts + optimised scoring only")
    ap.add_argument(
        "--until",
        choices=[name for name, _, _ in STAGES],
        default="siscore_grid",
        help="the last stage run (before siscore_grid: the stage table and peaks only)",
    )
    args = ap.parse_args()
    if args.recipe == "cpu":  # the trained cpu recipe's scoring paths: benchmarks/scale_recipe.py
        from benchmarks.scale_recipe import recipe_main

        return recipe_main(args, args.tiles)
    if args.processes:
        os.environ["SISCORE_WORKER_PROCESSES"] = "1"
    n = args.tiles
    workers = sorted({int(w) for w in args.workers.split(",")})
    if n < 1 or not workers or min(workers) < 1:
        ap.error("--tiles and every --workers value must be positive")
    work = (args.workdir or Path(f"/tmp/siscore_scale_{n}")).resolve()
    root, data, home = work / "country", work / "data", work / "dagster_home"

    built = build_link_farm(root, args.sample.resolve(), n)
    print(
        f"link farm {root}: {n:,} links "
        + ("reused" if built is None else f"built in {built:.1f} s")
    )
    countries = work / "countries.yaml"
    accepted = write_countries(countries, root, args.store_px, args.block_zoom)
    for folder in (data, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("")
    (work / "logs").mkdir(exist_ok=True)
    info = {
        "store_px": args.store_px if accepted else 0,
        "block_zoom": args.block_zoom if accepted else None,
        "workdir": str(work),
        "link_farm_build_s": built,
        "worker_kind": "processes" if args.processes else "threads",
    }

    top = max(workers)
    results: list[StageResult] = []
    try:
        print(f"stages (logs in {work / 'logs'}):")
        results.append(run_startup(work, countries, top))
        for name, select, kind in STAGES:
            for w in workers if name in SPLIT else [top]:
                if (
                    name == "patches"
                ):  # cut afresh at every worker count: a finished store would be resumed
                    shutil.rmtree(data / CODE / "tiles", ignore_errors=True)
                results.append(run_stage(name, select, kind, w, n, work, countries))
            if name == args.until:
                break
        if args.until != "siscore_grid":  # a partial chain: its stages' figures only
            stages, peak = stage_table(results)
            if args.json:
                partial = {"machine": machine(), "tiles": n, "until": args.until, **info}
                partial.update(stages=[asdict(r) for r in results], peak_stage=peak.stage)
                partial["peak_rss_bytes"] = peak.peak_rss_bytes
                args.json.write_text(json.dumps(partial, indent=2) + "\n")
            return
        checkpoint = data / CODE / "models" / "scorer.pt"
        bare = {}
        for w in workers:
            bare[w] = bare_throughput(checkpoint, w, args.bare_seconds)
            print(f"  bare forward pass  w={w}  {bare[w]:8.0f} images/s", flush=True)
        figures = report(n, workers, results, bare, info)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
            print(f"\nfigures: {args.json}")
    finally:
        if not args.keep:
            for folder in (data, home):
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
