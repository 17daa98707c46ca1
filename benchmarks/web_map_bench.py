"""The interactive map at scale: site size on disk, build time, and the time headless Chromium
takes to first render it (style and every visible tile loaded), plus frames drawn while panning.

Two modes:

    # a site already built (e.g. `siscore map --country PRK --out DIR`): measure it
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.web_map_bench --site DIR

    # the scale benchmark's country (benchmarks/scale.py: `SCL`, one year, N tiles in a
    # near-square block at zoom 14 from the NK sample's corner): a warehouse of N scored tiles is
    # written directly (seeded smooth field + noise; no training), the imagery is the NK
    # sample's real 256 px tiles repeated in order (as scale.py's link farm does), then the site
    # is built and measured
    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.web_map_bench --tiles 32578 [--years 1]
        [--workdir /tmp/siscore_web_32578] [--json OUT]

First render: median over ``--loads`` fresh page loads (new browser profile each) of the time
from navigation start to the first moment the map reports ready (``window.__siscore.firstIdleMs``
in map.js).  Chromium draws WebGL with SwiftShader (CPU), as in the browser tests.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "nk_sample"
CODE = "SCL"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
]


def sample_images() -> tuple[np.ndarray, int, int]:
    """The NK sample's tiles (every year's, sorted) as one array, and its smallest x and y."""
    files = sorted(p.resolve() for p in (SAMPLE / "tiles").glob("*/*.png"))
    ys, xs = zip(*(map(int, p.stem.split("_")) for p in files))
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    return images, min(xs), min(ys)


def write_warehouse(root: Path, n: int, years: list[int], x0: int, y0: int) -> Path:
    """``siscore_grid`` and ``patches`` of N tiles per year, written through the warehouse."""
    from siscore_assets.core.imagery.grid import Tile
    from siscore_assets.core.storage import warehouse as wh

    db = root / "warehouse.duckdb"
    nx = math.ceil(math.sqrt(n))
    i = np.arange(n)
    x, y = x0 + i % nx, y0 + i // nx
    rng = np.random.default_rng(0)
    field = 0.5 + 0.25 * np.sin(x / 23.0) * np.cos(y / 31.0)
    for k, year in enumerate(years):
        score = np.clip(field + 0.03 * k + rng.normal(0, 0.08, n), 0, 1)
        base = pd.DataFrame({"country": CODE, "year": year, "z": 14, "x": x, "y": y})
        base["tile_id"] = [Tile(14, int(a), int(b)).tile_id for a, b in zip(x, y)]
        grid = base.assign(raw_score=score, inhabited=rng.random(n) > 0.3, score=score)
        patches = base.assign(status="ok", image_row=i, stack_path="nk_sample")
        wh.write(db, "siscore_grid", grid, {"country": CODE, "year": year})
        wh.write(db, "patches", patches, {"country": CODE, "year": year})
    return db


def first_render(site: Path, loads: int) -> dict:
    """Median first-render ms over ``loads`` fresh loads, and frames drawn in a 2 s pan."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from siscore_assets.core.maps.web.serve import SiteServer

    times, fps = [], None
    with SiteServer(site) as server:
        for _ in range(loads):
            profile = tempfile.mkdtemp(prefix="siscore-bench-")
            opts = webdriver.ChromeOptions()
            for f in [*FLAGS, f"--user-data-dir={profile}"]:
                opts.add_argument(f)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
            try:
                driver.get(server.url)
                ms = None
                for _ in range(1200):
                    ms = driver.execute_script(
                        "return window.__siscore && window.__siscore.firstIdleMs"
                    )
                    if ms:
                        break
                    time.sleep(0.1)
                times.append(ms)
                if fps is None:
                    fps = driver.execute_async_script(
                        "const done = arguments[0], m = window.__siscore.map; let n = 0;"
                        "m.on('render', () => n++); m.panBy([600, 300], {duration: 2000});"
                        "setTimeout(() => done(n / 2), 2100);"
                    )
            finally:
                driver.quit()
                shutil.rmtree(profile, ignore_errors=True)
    good = [t for t in times if t]
    return {
        "first_render_ms_median": round(statistics.median(good)) if good else None,
        "first_render_ms": [round(t) if t else None for t in times],
        "pan_frames_per_s": fps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path, help="measure this built site")
    ap.add_argument("--tiles", type=int, help="build the N-tile benchmark country, then measure")
    ap.add_argument("--years", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--loads", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from siscore_assets.core.maps.web import pyramid, site

    out: dict = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores"}
    if args.tiles:
        work = args.workdir or Path(f"/tmp/siscore_web_{args.tiles}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        images, x0, y0 = sample_images()
        years = list(range(2019 - args.years + 1, 2020))
        db = write_warehouse(work, args.tiles, years, x0, y0)

        def reader(_stack: str, rows: np.ndarray) -> np.ndarray:
            return images[np.asarray(rows) % len(images)]

        report = site.build_site(db, CODE, work / "site", reader=reader)
        out.update(report.summary(), build_seconds=round(report.seconds, 1))
        target = work / "site"
    else:
        target = args.site
        size, files = pyramid.folder_size(target)
        out.update(site=str(target), site_mb=round(size / 1e6, 2), files=files)
    out.update(first_render(target, args.loads))
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
