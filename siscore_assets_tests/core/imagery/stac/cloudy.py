"""A monsoon season for the STAC double: one granule (UTM 52N, 20 m COGs) whose five scenes are
all cloudier than the default ``max_scene_cloud`` (60-80 % scene cloud) and none of which is
clear over the AOI; together they are.

The AOI spans five slanted bands of longitude; scene k is clear over bands k and k + 1 (mod 5)
only, so the best single scene leaves about 60 % of the AOI cloudy, and every place is clear in
two scenes.  Used by ``test_cloudy_selection.py`` and ``benchmarks/cloudy_scenes.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.transform import from_origin
from rasterio.warp import transform, transform_bounds, transform_geom
from shapely.geometry import box, mapping, shape

from siscore_assets_tests.core.imagery.stac.double import PIXEL_M, _write_cog

YEAR = 2022
SEASON = ("06-01", "09-30")
EPSG = 32652
SCENE_LONLAT = (125.99, 37.99, 126.15, 38.09)
AOI_BBOX = (126.0, 38.0, 126.14, 38.08)
BANDS_N = 5
GRANULE = "52SCD"
SCENES = {
    f"monsoon_{k}": (f"2022-0{7 + k // 3}-{5 + 9 * (k % 3):02d}", 60.0 + 5 * k) for k in range(5)
}


def band_of(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Which of the five slanted AOI bands a point is in (0..4; outside the AOI clipped)."""
    w, s, e, n = AOI_BBOX
    u = (lon - w + 0.25 * (lat - (s + n) / 2)) / (e - w)
    return np.clip(np.floor(u * BANDS_N), 0, BANDS_N - 1).astype(int)


def clear_bands(k: int) -> tuple[int, int]:
    return k % BANDS_N, (k + 1) % BANDS_N


def write_cloudy_catalogue(folder: Path, base_url: str) -> list[dict]:
    """Write the COGs under ``folder``; the STAC items pointing at ``base_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{EPSG}", *SCENE_LONLAT)
    tf = from_origin(round(left), round(top), PIXEL_M, PIXEL_M)
    w, h = int((right - left) // PIXEL_M), int((top - bottom) // PIXEL_M)
    rows, cols = np.mgrid[0:h, 0:w]
    xs, ys = tf * (cols + 0.5, rows + 0.5)
    lon, lat = transform(f"EPSG:{EPSG}", "EPSG:4326", xs.ravel(), ys.ravel())
    bands = band_of(np.asarray(lon), np.asarray(lat)).reshape(h, w)
    geom = transform_geom(
        f"EPSG:{EPSG}",
        "EPSG:4326",
        mapping(box(tf.c, tf.f - h * PIXEL_M, tf.c + w * PIXEL_M, tf.f)),
        precision=7,
    )
    items = []
    for k, (sid, (date, cloud_pct)) in enumerate(SCENES.items()):
        cloud = ~np.isin(bands, clear_bands(k))
        assets = {}
        for b, band in enumerate(("B04", "B03", "B02", "B08")):
            ground = 300 + (rows * 37 + cols * 101 + b * 211 + k * 53) % 1500
            dn = np.where(cloud, 2900 + b * 10, ground).astype(np.uint16)
            _write_cog(folder / f"{sid}_{band}.tif", dn, tf, EPSG)
            assets[band] = {"href": f"{base_url}/cogs/{sid}_{band}.tif", "type": "image/tiff"}
        scl = np.where(cloud, 9, 4).astype(np.uint8)
        _write_cog(folder / f"{sid}_SCL.tif", scl, tf, EPSG)
        assets["SCL"] = {"href": f"{base_url}/cogs/{sid}_SCL.tif", "type": "image/tiff"}
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": sid,
                "collection": "sentinel-2-l2a",
                "geometry": geom,
                "bbox": list(shape(geom).bounds),
                "links": [],
                "assets": assets,
                "properties": {
                    "datetime": f"{date}T02:30:00Z",
                    "eo:cloud_cover": cloud_pct,
                    "s2:mgrs_tile": GRANULE,
                    "proj:epsg": EPSG,
                    "s2:processing_baseline": "03.01",
                },
            }
        )
    return items


def cloudy_source(url: str, **over) -> dict:
    """The countries-file source block for the monsoon catalogue."""
    return {
        "kind": "stac",
        "api": url,
        "bbox": list(AOI_BBOX),
        "season": list(SEASON),
        "tile_px": 64,
        "threads": 2,
        "chunk_tiles": 4,
        "retries": 2,
        "backoff_s": 0.01,
        "timeout_s": 5,
        **over,
    }
