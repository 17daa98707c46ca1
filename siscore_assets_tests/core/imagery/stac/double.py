"""A STAC API double on 127.0.0.1 and a tiny Sentinel-2 L2A catalogue for it (tests and benchmark).

The double serves the landing page, ``POST /search`` (filtering by collection, datetime and
``intersects``; pages of ``limit`` items linked by ``next``) and the COG files with HTTP range
requests, so reads go through GDAL's /vsicurl/ exactly as against a real API.  It can inject
latency per request and fail a file's first N requests with HTTP 500.

The catalogue straddles the UTM 51N / 52N boundary (126 deg E) around 38 deg N:

* granule 51SZH (EPSG:32651): 51_clear (5 %), 51_cloudy (80 %, over the limit), 51_halfblank
  (2 %, but the east half is no-data) -> 51_clear is chosen;
* granule 52SBC (EPSG:32652): 52_b0400 (3 %, baseline 04.00, +1000 in the pixels; its B04 fails
  twice before it reads) and 52_applied (3 %, offset already applied, further from the season
  centre) -> 52_b0400 is chosen;
* granule 52SBD: two scenes at 90 % and 95 % -> skipped, every scene over the limit.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, mapping, shape

YEAR = 2022
SEASON = ("06-01", "08-31")
AOI_BBOX = (125.985, 38.0, 126.015, 38.02)
PIXEL_M = 20.0
BANDS = ("B04", "B03", "B02")
# scene id -> (granule, epsg, lon range, date, cloud %, properties, kind)
SCENES = {
    "51_clear": (
        "51SZH",
        32651,
        (125.97, 126.004),
        "2022-07-10",
        5.0,
        {"s2:processing_baseline": "03.01"},
        "clear",
    ),
    "51_cloudy": (
        "51SZH",
        32651,
        (125.97, 126.004),
        "2022-07-15",
        80.0,
        {"s2:processing_baseline": "03.01"},
        "cloudy",
    ),
    "51_halfblank": (
        "51SZH",
        32651,
        (125.97, 126.004),
        "2022-07-20",
        2.0,
        {"s2:processing_baseline": "03.01"},
        "halfblank",
    ),
    "52_b0400": (
        "52SBC",
        32652,
        (125.997, 126.03),
        "2022-07-16",
        3.0,
        {"s2:processing_baseline": "04.00"},
        "clear",
    ),
    "52_applied": (
        "52SBC",
        32652,
        (125.997, 126.03),
        "2022-06-05",
        3.0,
        {"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": True},
        "clear",
    ),
    "52D_a": (
        "52SBD",
        32652,
        (125.997, 126.03),
        "2022-07-01",
        90.0,
        {"s2:processing_baseline": "04.00"},
        "cloudy",
    ),
    "52D_b": (
        "52SBD",
        32652,
        (125.997, 126.03),
        "2022-07-02",
        95.0,
        {"s2:processing_baseline": "04.00"},
        "cloudy",
    ),
}
EXPECTED_CHOICE = {"51SZH": "51_clear", "52SBC": "52_b0400"}
FAILING = {"52_b0400_B04.tif": 2}  # file -> HTTP 500 responses before it reads


def true_dn(scene: str, band: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The harmonised reflectance DN of a scene's pixel (what every baseline should read as)."""
    b = BANDS.index(band) if band in BANDS else 3
    s = sorted(SCENES).index(scene)
    return (200 + (rows * 37 + cols * 101 + b * 211 + s * 97) % 2600).astype(np.uint16)


def scene_geometry(scene: str) -> tuple[rasterio.Affine, int, int]:
    _, epsg, (w, e), *_ = SCENES[scene]
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{epsg}", w, 37.99, e, 38.03)
    width, height = int((right - left) // PIXEL_M), int((top - bottom) // PIXEL_M)
    return from_origin(round(left), round(top), PIXEL_M, PIXEL_M), width, height


def _write_cog(path: Path, data: np.ndarray, transform, epsg: int) -> None:
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "nodata": 0,
        "blocksize": 128,
        "compress": "deflate",
        "overviews": "none",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def write_catalogue(folder: Path, base_url: str) -> list[dict]:
    """Write the COGs under ``folder`` and return the STAC items pointing at ``base_url``."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for sid, (granule, epsg, _, date, cloud, props, kind) in SCENES.items():
        tf, w, h = scene_geometry(sid)
        rows, cols = np.mgrid[0:h, 0:w]
        blank = cols >= w // 2 if kind == "halfblank" else np.zeros((h, w), bool)
        offset = (
            1000
            if props.get("s2:processing_baseline") == "04.00"
            and not props.get("earthsearch:boa_offset_applied")
            else 0
        )
        assets = {}
        for band in (*BANDS, "B08"):
            dn = true_dn(sid, band, rows, cols) + offset
            dn[blank] = 0
            _write_cog(folder / f"{sid}_{band}.tif", dn.astype(np.uint16), tf, epsg)
            assets[band] = {
                "href": f"{base_url}/cogs/{sid}_{band}.tif",
                "type": "image/tiff; application=geotiff",
            }
        scl = np.full((h, w), 4, np.uint8)  # vegetation
        if kind == "cloudy":
            scl[:, :] = 9
        scl[blank] = 0
        _write_cog(folder / f"{sid}_SCL.tif", scl, tf, epsg)
        assets["SCL"] = {
            "href": f"{base_url}/cogs/{sid}_SCL.tif",
            "type": "image/tiff; application=geotiff",
        }
        left, top = tf.c, tf.f
        geom = transform_geom(
            f"EPSG:{epsg}",
            "EPSG:4326",
            mapping(box(left, top - h * PIXEL_M, left + w * PIXEL_M, top)),
            precision=7,
        )
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
                    "eo:cloud_cover": cloud,
                    "s2:mgrs_tile": granule,
                    "proj:epsg": epsg,
                    **props,
                },
            }
        )
    return items


@dataclass
class StacDouble:
    """The API double; ``with StacDouble(folder) as api:`` starts and stops it."""

    folder: Path
    latency_s: float = 0.0
    failing: dict[str, int] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    down: bool = False  # every request answered 503

    def __enter__(self) -> StacDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(
                self, code: int, body: bytes, ctype: str = "application/json", extra=None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _gate(self) -> bool:
                with double.lock:
                    double.requests.append(f"{self.command} {self.path}")
                if double.latency_s:
                    time.sleep(double.latency_s)
                if double.down:
                    self._send(503, b'{"error": "down"}')
                    return False
                name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                with double.lock:
                    left = double.failing.get(name, 0)
                    if left:
                        double.failing[name] = left - 1
                if left:
                    self._send(500, b"boom", "text/plain")
                    return False
                return True

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                if not self._gate():
                    return
                if self.path in ("/", ""):
                    base = double.url
                    body = {
                        "type": "Catalog",
                        "id": "double",
                        "stac_version": "1.0.0",
                        "description": "test double",
                        "conformsTo": [
                            "https://api.stacspec.org/v1.0.0/core",
                            "https://api.stacspec.org/v1.0.0/item-search",
                            "https://api.stacspec.org/v1.0.0/item-search#filter",
                        ],
                        "links": [
                            {"rel": "self", "href": f"{base}/"},
                            {"rel": "root", "href": f"{base}/"},
                            {
                                "rel": "search",
                                "href": f"{base}/search",
                                "method": "POST",
                                "type": "application/geo+json",
                            },
                        ],
                    }
                    self._send(200, json.dumps(body).encode())
                elif self.path.startswith("/cogs/"):
                    path = double.folder / self.path.split("?", 1)[0][len("/cogs/") :]
                    if not path.is_file():
                        self._send(404, b"not found", "text/plain")
                        return
                    data = path.read_bytes()
                    rng = self.headers.get("Range")
                    if rng and rng.startswith("bytes="):
                        a, _, b = rng[6:].partition("-")
                        start, end = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
                        self._send(
                            206,
                            data[start : end + 1],
                            "image/tiff",
                            {
                                "Content-Range": f"bytes {start}-{end}/{len(data)}",
                                "Accept-Ranges": "bytes",
                            },
                        )
                    else:
                        self._send(200, data, "image/tiff", {"Accept-Ranges": "bytes"})
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"
                )
                if not self._gate():
                    return
                if not self.path.startswith("/search"):
                    self._send(404, b'{"error": "not found"}')
                    return
                self._send(200, json.dumps(double.search(body)).encode(), "application/geo+json")

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def search(self, body: dict) -> dict:
        start, _, end = str(body.get("datetime", "/")).partition("/")
        aoi = (
            shape(body["intersects"])
            if body.get("intersects")
            else (box(*body["bbox"]) if body.get("bbox") else None)
        )
        hits = [
            it
            for it in self.items
            if it["collection"] in body.get("collections", [it["collection"]])
            and (not start or it["properties"]["datetime"] >= start)
            and (not end or it["properties"]["datetime"] <= end)
            and (aoi is None or shape(it["geometry"]).intersects(aoi))
        ]
        limit, token = int(body.get("limit", 10)), int(body.get("token", 0))
        page = hits[token : token + limit]
        links = []
        if token + limit < len(hits):
            links.append(
                {
                    "rel": "next",
                    "href": f"{self.url}/search",
                    "method": "POST",
                    "body": {**body, "token": token + limit},
                }
            )
        return {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberMatched": len(hits),
            "numberReturned": len(page),
        }

    def cog_requests(self) -> list[str]:
        return [r for r in self.requests if "/cogs/" in r]


def source_block(url: str, **over) -> dict:
    """The countries-file source block for the double (small pages to exercise pagination)."""
    return {
        "kind": "stac",
        "api": url,
        "bbox": list(AOI_BBOX),
        "season": list(SEASON),
        "page_size": 2,
        "threads": 2,
        "chunk_tiles": 2,
        "retries": 3,
        "backoff_s": 0.01,
        "timeout_s": 5,
        **over,
    }
