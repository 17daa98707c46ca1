"""STAC ingestion throughput: tiles/s onto the zoom-14 grid, from local COGs and over HTTP.

Writes one synthetic Sentinel-2-like scene (UTM 52N, 10 m, B04/B03/B02/SCL as COGs, about
11 x 11 km) and reads the AOI's grid tiles from it with the project's reader
(``core/imagery/stac``): once from local files, then through the loopback STAC double with
latency injected per HTTP request, at 1 thread and at N threads; and, from local files, the
scene's granule patches of 343 px (``source.granule_patches``: windows, no reprojection).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/stac_bench.py [--latency-ms 50] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, mapping

from siscore_assets.core.imagery.stac import granule_patches, ingest
from siscore_assets.core.imagery.stac.config import parse_stac_source
from siscore_assets.core.imagery.stac.search import scene_from_item
from siscore_assets_tests.core.imagery.stac.double import StacDouble

EPSG = 32652
SCENE_LONLAT = (126.0, 38.0, 126.125, 38.1)
AOI = (126.01, 38.01, 126.115, 38.09)


def write_scene(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{EPSG}", *SCENE_LONLAT)
    w, h = int((right - left) // 10), int((top - bottom) // 10)
    tf = from_origin(round(left), round(top), 10, 10)
    rows, cols = np.mgrid[0:h, 0:w]
    assets = {}
    for k, band in enumerate(("B04", "B03", "B02", "SCL")):
        data = (
            np.full((h, w), 4, np.uint8)
            if band == "SCL"
            else (300 + (rows * 7 + cols * 13 + k * 101) % 2500).astype(np.uint16)
        )
        path = folder / f"{band}.tif"
        with rasterio.open(
            path,
            "w",
            driver="COG",
            width=w,
            height=h,
            count=1,
            dtype=data.dtype.name,
            crs=f"EPSG:{EPSG}",
            transform=tf,
            nodata=0,
            blocksize=512,
            compress="deflate",
        ) as dst:
            dst.write(data, 1)
        assets[band] = {"href": str(path)}
    geom = transform_geom(
        f"EPSG:{EPSG}", "EPSG:4326", mapping(box(tf.c, tf.f - 10 * h, tf.c + 10 * w, tf.f))
    )
    return {
        "type": "Feature",
        "id": "bench",
        "geometry": geom,
        "assets": assets,
        "properties": {
            "datetime": "2022-07-01T02:00:00Z",
            "eo:cloud_cover": 1.0,
            "s2:mgrs_tile": "52SBC",
            "proj:epsg": EPSG,
            "s2:processing_baseline": "04.00",
        },
    }


def timed_read(
    item: dict, url: str | None, threads: int, work: Path, granule: bool = False
) -> tuple[int, float]:
    """Read every AOI tile once (``granule``: every AOI granule patch of 343 px instead), from a
    fresh copy of the COGs (GDAL's caches start cold)."""
    run = f"run_{threads}_{'http' if url else 'local'}{'_granule' if granule else ''}"
    shutil.copytree(work / "cogs", work / run)
    item = {
        **item,
        "assets": {
            k: {"href": str(work / run / Path(a["href"]).name)} for k, a in item["assets"].items()
        },
    }
    raw = {
        "kind": "stac",
        "api": url or "http://local.invalid",
        "bbox": list(AOI),
        "threads": threads,
        "chunk_tiles": 4,
        "retries": 1,
        "backoff_s": 0.1,
        "granule_patches": granule,
    }
    cfg = parse_stac_source(raw, "bench")
    if url:
        item = {
            **item,
            "assets": {
                k: {"href": f"{url}/cogs/{run}/{Path(a['href']).name}"}
                for k, a in item["assets"].items()
            },
        }
    scene = scene_from_item(item, cfg)
    sel = ingest.Selection(2022, mapping(box(*AOI)), (scene,), ())
    cache = work / f"cache_{run}"
    t0 = time.perf_counter()
    if granule:
        _, _, stats = granule_patches.read_granule_patches(
            cfg, [scene], box(*AOI), cache, work / f"store_{run}", max_cloud=0.15
        )
        return stats["patches_read"], time.perf_counter() - t0
    index, stack, stats = ingest.read_year(cfg, sel, 14, cache, max_cloud=0.15)
    return stats["tiles_read"], time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stac_bench_"))
    try:
        item = write_scene(work / "cogs")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
            f"GDAL {rasterio.__gdal_version__}"
        )
        rows = []
        for threads in (1, args.threads):
            n, s = timed_read(item, None, threads, work)
            rows.append(("local COGs", threads, n, s))
        for threads in (1, args.threads):  # the reproduction's patching: windows, no reprojection
            n, s = timed_read(item, None, threads, work, granule=True)
            rows.append(("local COGs, granule patches of 343 px", threads, n, s))
        with StacDouble(work, latency_s=args.latency_ms / 1000) as api:
            for threads in (1, args.threads):
                before = len(api.requests)
                n, s = timed_read(item, api.url, threads, work)
                rows.append(
                    (
                        f"HTTP, {args.latency_ms:.0f} ms/request "
                        f"({len(api.requests) - before} requests)",
                        threads,
                        n,
                        s,
                    )
                )
        print("| source | threads | tiles | seconds | tiles/s | Mpx/s |\n|---|---|---|---|---|---|")
        for src, threads, n, s in rows:
            px = 343 if "granule" in src else 256
            print(
                f"| {src} | {threads} | {n} | {s:.2f} | {n / s:.1f} | {n * px * px / s / 1e6:.2f} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
