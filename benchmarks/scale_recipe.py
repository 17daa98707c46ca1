"""Scale benchmark of the ``cpu`` recipe (``python -m benchmarks.scale --recipe cpu``): its trained
scorer (a ResNet-18 at 64 px per seed, three seeds, colour and fine-texture statistics read at
the tile's native 256 px) scores a tile-folder country of N real 256 px tiles, one year.

Stages, each its own subprocess (peak RSS / PSS of its process tree, disk written):
``granules`` + ``patches`` (the real Dagster assets: the 256 px tile store), then, on the
store, with ``--workers`` worker threads of one torch thread each:

- ``parts``: the recipe's CNN input and statistics computed once per tile-year and stored
  (``core/models/scorer_parts.py``; what a STAC country would keep instead of native tiles);
- ``score_parts``: every tile scored from the stored parts (what every later scoring pass of
  the year costs; ``--optimize``: the seeds' networks frozen for inference, opt-in);
- ``score_fused``: every tile scored from its native tile, seeds fused (statistics once);
- ``score_landed``: ``batch_inference.score_block`` (the landed path) on the first
  ``--landed-rows`` rows, and the largest score difference of the other two paths there.

The recipe's bare forward rate is measured in the same run: W spawned processes of one torch
thread each, random batches of 256, (a) the whole recipe (statistics at 256 px + all seeds:
the rate ``score_fused`` is compared to), (b) the seeds' networks on the 64 px input, in
batches of ``scorer_parts.SCORE_BATCH`` as scoring from parts runs them (the rate
``score_parts`` is compared to), plain and optimised, and (c) the landed ``score_images``.  The
checkpoint is a trained one (``--checkpoint``; default ``data/PRK/models/scorer.pt`` from
``make nk``), copied into the benchmark's data folder.  Each body stage also reports the CPU
seconds its process tree used (tiles per CPU-second, and CPUs busy on average): on a shared
machine the wall-clock rate falls with the share of the cores the run got, this does not.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BATCH = 256
STAGE_TAG = "STAGE_RESULT "


# --- stage bodies (run as ``python -m benchmarks.scale_recipe <stage> ...``) -------------------


def _store(data: Path) -> Path:
    found = sorted((data / "SCL" / "tiles").glob("*/*/manifest.json"))
    if not found:
        raise SystemExit(f"no tile store under {data / 'SCL' / 'tiles'}: run patches first")
    return found[0].parent


def stage_body(stage: str, data: Path, checkpoint: Path, workers: int, rows: int, opt: bool):
    """One stage in this process; prints ``STAGE_RESULT {json}``."""
    import numpy as np

    from siscore_assets.core.compute.blocks import WorkerConfig, run_blocks
    from siscore_assets.core.models import batch_inference, scorer_parts
    from siscore_assets.core.storage.tile_store import TileStore

    store_path = _store(data)
    store = TileStore(store_path)
    cfg = WorkerConfig(workers=workers, threads=1)
    model = batch_inference.cached_scorer(checkpoint)
    out: dict = {"tiles": len(store)}
    t0 = time.perf_counter()
    if stage == "parts":
        spec = scorer_parts.ensure_parts(store_path, model.config, None, cfg)
        folder = scorer_parts.parts_folder(store_path, spec)
        out["bytes"] = sum(p.stat().st_size for p in folder.iterdir())
    elif stage in ("score_parts", "score_fused"):
        fn = (
            scorer_parts.score_parts_block
            if stage == "score_parts"
            else batch_inference.score_block
        )
        scores = batch_inference.map_store(
            fn, checkpoint, store_path, store, None, cfg, empty=np.zeros(0), extra=(None, opt)
        )
        np.save(data / f"{stage}{'_opt' if opt else ''}.npy", scores)
    elif stage == "score_landed":
        # the first tasks siscore_grid would run (same batches: oneDNN's numbers can depend on
        # a batch's size), up to ``rows`` rows
        ranges = [t for t in batch_inference.block_tasks(store) if t[1] < rows]
        tasks = [(str(checkpoint), str(store_path), lo, hi) for _, lo, hi in ranges]
        n = tasks[-1][3]
        scores = np.concatenate(
            run_blocks(batch_inference.score_block, tasks, [str(t[2]) for t in tasks], cfg)
        )
        out["tiles"] = n
        for other in sorted(data.glob("score_*.npy")):
            out[f"max_abs_diff_{other.stem}"] = float(np.abs(np.load(other)[:n] - scores).max())
    else:
        raise SystemExit(f"unknown stage {stage}")
    out["seconds"] = time.perf_counter() - t0
    out["tiles_per_s"] = out["tiles"] / out["seconds"]
    print(STAGE_TAG + json.dumps(out), flush=True)


# --- bare forward rate --------------------------------------------------------------------------

_barrier = None


def _init(barrier) -> None:
    global _barrier
    _barrier = barrier


def _bare_worker(args: tuple[str, str, float, bool]) -> tuple[int, float, float]:
    import numpy as np
    import torch

    from siscore_assets.core.models import batch_inference, fused_scoring, scorer, scorer_parts

    path, what, seconds, opt = args
    torch.set_num_threads(1)
    model = batch_inference.cached_scorer(path)
    nets = batch_inference.cached_nets(path, None, opt)
    cfg = model.config
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, cfg.tensor_px, cfg.tensor_px, 3), dtype=np.uint8)
    n = BATCH if what in ("recipe", "landed") else scorer_parts.SCORE_BATCH  # rows a step scores
    x64 = torch.randn(n, 3, cfg.input_px, cfg.input_px)
    raw = torch.randn(n, len(fused_scoring.members(model)[0].stat_mean))

    def step() -> None:
        if what == "recipe":
            fused_scoring.score_images_fused(model, images, BATCH, nets)
        elif what == "landed":
            scorer.score_images(model, images, BATCH)
        else:
            with torch.inference_mode():
                fused_scoring.scores_from_parts(model, x64, raw if cfg.colour_stats else None, nets)

    step()
    _barrier.wait()
    t0, done = time.time(), 0
    while time.time() - t0 < seconds:
        step()
        done += n
    return done, t0, time.time()


def bare_rate(checkpoint: Path, workers: int, what: str, seconds: float, opt: bool) -> float:
    """Images/s of ``workers`` single-thread processes side by side (total / wall)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers, timeout=600)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(barrier,)) as p:
        parts = list(p.map(_bare_worker, [(str(checkpoint), what, seconds, opt)] * workers))
    return sum(d for d, _, _ in parts) / (max(e for *_, e in parts) - min(s for _, s, _ in parts))


def bare_all(checkpoint: Path, workers: int, seconds: float) -> dict[str, float]:
    """Every bare rate: the recipe (fused), its networks (plain, optimised), the landed path."""
    out = {
        "recipe": bare_rate(checkpoint, workers, "recipe", seconds, False),
        "nets": bare_rate(checkpoint, workers, "nets", seconds, False),
        "nets_optimised": bare_rate(checkpoint, workers, "nets", seconds, True),
        "landed": bare_rate(checkpoint, workers, "landed", seconds, False),
    }
    print("  bare: " + ", ".join(f"{k} {v:.1f} images/s" for k, v in out.items()), flush=True)
    return out


# --- driver ---------------------------------------------------------------------------------


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _children_cpu_s() -> float:
    """User + system CPU seconds of every finished child process (and the descendants each
    waited for): a stage's share of the cores, which a shared machine can lower, shows beside its
    wall-clock rate."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_body_stage(stage: str, work: Path, args, opt: bool = False) -> dict:
    from benchmarks.scale import fail, run_tree

    data = work / "data"
    log = work / "logs" / f"{stage}{'_opt' if opt else ''}"
    cmd = [sys.executable, "-m", "benchmarks.scale_recipe", stage, str(data)]
    cmd += [str(data / "SCL" / "models" / "scorer.pt"), str(args.workers), str(args.landed_rows)]
    cmd += ["1" if opt else "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    before = _disk(data)
    cpu_before = _children_cpu_s()
    rc, wall, peak, pss = run_tree(cmd, env, log)
    if rc:
        fail(stage, rc, log)
    text = log.with_suffix(".out").read_text()
    res = json.loads(text.split(STAGE_TAG)[-1].splitlines()[0])
    res.update(stage=stage + (" (optimised nets)" if opt else ""), wall_s=wall)
    res.update(peak_rss_bytes=peak, peak_pss_bytes=pss, disk_written_bytes=_disk(data) - before)
    res.update(cpu_s=_children_cpu_s() - cpu_before)
    print(
        f"  {res['stage']:<28} {wall:7.1f} s wall  block work {res['tiles_per_s']:7.1f} tiles/s  "
        f"end to end {res['tiles'] / wall:7.1f} tiles/s  "
        f"{res['tiles'] / res['cpu_s']:6.1f} tiles per CPU-second  peak {peak / 1e9:.2f} GB",
        flush=True,
    )
    return res


def recipe_main(args, n: int) -> None:
    """``benchmarks.scale --recipe cpu``: see the module docstring."""
    from benchmarks.scale import (
        build_link_farm,
        machine,
        run_stage,
        write_countries,
    )
    from siscore_assets.core.models import scorer_parts

    if not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no trained cpu-recipe scorer (run `make nk`)")
    work = (args.workdir or Path(f"/tmp/siscore_scale_cpu_{n}")).resolve()
    root, data, home = work / "country", work / "data", work / "dagster_home"
    built = build_link_farm(root, args.sample.resolve(), n)
    countries = work / "countries.yaml"
    write_countries(countries, root, 0, args.block_zoom)
    text = countries.read_text().replace("folder_urban_clusters: 11", "recipe: cpu")
    countries.write_text(text)
    for folder in (data, home):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("")
    (work / "logs").mkdir(exist_ok=True)
    (data / "SCL" / "models").mkdir(parents=True)
    shutil.copy2(args.checkpoint, data / "SCL" / "models" / "scorer.pt")
    load = os.getloadavg()
    print(
        f"link farm {root}: {n:,} links ({'reused' if built is None else 'built'}); "
        f"load average at start {load[0]:.1f}; stages (logs in {work / 'logs'}):"
    )
    stages = []
    w = max(int(x) for x in str(args.workers).split(","))
    args.workers = w
    try:
        quick = args.quick
        bare_start = None if quick else bare_all(args.checkpoint, w, args.bare_seconds)
        for name in ("granules", "patches"):
            r = run_stage(name, name, "yearly", w, n, work, countries)
            stages.append(
                {
                    "stage": name,
                    "wall_s": r.wall_s,
                    "tiles": n,
                    "peak_rss_bytes": r.peak_rss_bytes,
                    "peak_pss_bytes": r.peak_pss_bytes,
                }
            )
        store_bytes = _disk(_store(data))
        stages.append(run_body_stage("parts", work, args))
        if not quick:
            stages.append(run_body_stage("score_parts", work, args))
        stages.append(run_body_stage("score_parts", work, args, opt=True))
        if not quick:
            stages.append(run_body_stage("score_fused", work, args))
            stages.append(run_body_stage("score_landed", work, args))
        bare_end = bare_all(args.checkpoint, w, args.bare_seconds)
        bare_start = bare_start or bare_end
        bare = {k: (bare_start[k] + bare_end[k]) / 2 for k in bare_start}
        load_end = os.getloadavg()
    finally:
        if not args.keep:
            for folder in (data, home):
                shutil.rmtree(folder, ignore_errors=True)
    by = {s["stage"]: s for s in stages}
    parts_bytes = by["parts"]["bytes"] / n
    figures = {
        "machine": machine(),
        "tiles": n,
        "recipe": "cpu",
        "workers": w,
        "checkpoint": str(args.checkpoint),
        "load_average_start": load,
        "load_average_end": load_end,
        "stages": stages,
        "bare_images_per_s": bare,
        "bare_images_per_s_start": bare_start,
        "bare_images_per_s_end": bare_end,
        "store_bytes_per_tile_year": store_bytes / n,
        "parts_bytes_per_tile_year": parts_bytes,
        "parts_disk_400k_4y_gb": parts_bytes * 400_000 * 4 / 1e9,
        "native_disk_400k_4y_gb": store_bytes / n * 400_000 * 4 / 1e9,
        "peak_rss_bytes": max(s["peak_rss_bytes"] for s in stages),
    }
    print(
        f"\nmachine: {figures['machine']['cpu_count']} CPUs; load average start "
        f"{load[0]:.1f}, end {load_end[0]:.1f}; N = {n:,}; {w} worker thread(s)"
    )
    print(
        f"bare forward, {w} x 1-thread processes, batch 256 (nets: {scorer_parts.SCORE_BATCH}), "
        "mean of start and end: " + ", ".join(f"{k} {v:.1f} images/s" for k, v in bare.items())
    )
    for name, key in (
        ("score_fused", "recipe"),
        ("score_parts", "nets"),
        ("score_parts (optimised nets)", "nets_optimised"),
    ):
        if name not in by:
            continue
        s = by[name]
        print(
            f"{name}: end to end {n / s['wall_s']:.1f} tiles/s = "
            f"{n / s['wall_s'] / bare[key]:.2f} of bare {key}; block work "
            f"{s['tiles_per_s']:.1f} tiles/s = {s['tiles_per_s'] / bare[key]:.2f}; "
            f"{s['cpu_s'] / s['wall_s']:.2f} CPUs busy on average ({w} workers)"
        )
    p, sp = by["parts"], by["score_parts (optimised nets)"]
    rate = n / (p["wall_s"] + sp["wall_s"])
    print(f"parts + score_parts (optimised) end to end: {rate:.1f} tiles/s")
    if "score_landed" in by:
        landed = by["score_landed"]
        print(
            f"landed score_block: block work {landed['tiles_per_s']:.1f} tiles/s (first "
            f"{landed['tiles']} rows); largest score differences to it there: "
            + str({k: v for k, v in landed.items() if k.startswith("max_abs")})
        )
    print(
        f"disk per tile-year: native store {store_bytes / n / 1e3:.1f} KB, parts "
        f"{parts_bytes / 1e3:.2f} KB (400,000 tiles x 4 years: "
        f"{figures['native_disk_400k_4y_gb']:.0f} GB vs {figures['parts_disk_400k_4y_gb']:.1f} GB)"
    )
    print(f"process-tree peak RSS over all stages: {figures['peak_rss_bytes'] / 1e9:.2f} GB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    stage_body(
        sys.argv[1],
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]),
        int(sys.argv[5]),
        sys.argv[6] == "1",
    )
