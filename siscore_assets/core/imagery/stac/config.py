"""The ``source: {kind: stac, ...}`` block of the countries file, checked once, and the AOI it names.

Every setting has a default that works against a public Sentinel-2 L2A STAC API (Earth Search,
Planetary Computer); a wrong value is a ``ValueError`` naming the setting and the country.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

DEFAULT_BANDS = ("B04", "B03", "B02")
OPTIONAL_BANDS = ("B08",)
RESAMPLING = ("nearest", "bilinear", "cubic")
SIGNERS = ("none", "planetary_computer")
# Asset keys tried per band: Planetary Computer uses the band names, Earth Search v1 colour names.
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "B04": ("B04", "red"), "B03": ("B03", "green"), "B02": ("B02", "blue"), "B08": ("B08", "nir"),
    "SCL": ("SCL", "scl"),
}


@dataclass(frozen=True)
class StacSource:
    """A STAC imagery source: where to search, what to keep, how to read."""

    api: str
    collection: str = "sentinel-2-l2a"
    aoi: str | None = None  # a GeoJSON polygon file (lon/lat); else ``bbox``
    bbox: tuple[float, float, float, float] | None = None
    season: tuple[str, str] | None = None  # ("MM-DD", "MM-DD"); None = the whole year
    max_scene_cloud: float = 50.0  # eo:cloud_cover (%) above which a scene is rejected
    scl_candidates: int = 4  # least-cloudy scenes per granule whose SCL is read to rank them
    bands: tuple[str, ...] = DEFAULT_BANDS
    stretch_max: int = 3000  # harmonised DN (reflectance x 10,000) mapped to 255; 0 stays 0
    resampling: str = "nearest"
    tile_px: int = 256
    threads: int = 4
    chunk_tiles: int = 16  # tiles read per task (one open of each COG per task)
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 1.0
    page_size: int = 100
    sign: str = "none"
    resign_after_s: float = 1800.0  # signed URLs last ~45 min on Planetary Computer
    asset_keys: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ASSET_KEYS))

    def season_window(self, year: int) -> tuple[dt.date, dt.date]:
        if self.season is None:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        start, end = (dt.date.fromisoformat(f"{year}-{s}") for s in self.season)
        return start, end

    def season_centre(self, year: int) -> dt.date:
        start, end = self.season_window(year)
        return start + (end - start) / 2

    def datetime_range(self, year: int) -> str:
        start, end = self.season_window(year)
        return f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"


def _number(raw: dict, key: str, default: float, where: str, *, lo: float = 0.0, hi: float | None = None) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: source.{key} must be a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{where}: source.{key} = {value} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    return value


def parse_stac_source(raw: dict[str, Any], where: str, bbox: tuple[float, ...] | None = None) -> StacSource:
    """Check a ``kind: stac`` source block (``where`` names the file and country in errors)."""
    known = set(StacSource.__dataclass_fields__) | {"kind", "max_cloud_fraction"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown stac source setting(s) {', '.join(unknown)}")
    api = raw.get("api")
    if not isinstance(api, str) or not api.startswith(("http://", "https://")):
        raise ValueError(f"{where}: source.api must be the STAC API's http(s) URL, got {api!r}")
    box_raw = raw.get("bbox", bbox)
    if box_raw is not None:
        if len(box_raw) != 4 or not (box_raw[0] < box_raw[2] and box_raw[1] < box_raw[3]):
            raise ValueError(f"{where}: bbox must be [west, south, east, north], got {box_raw!r}")
        box_raw = tuple(float(v) for v in box_raw)
    if raw.get("aoi") is None and box_raw is None:
        raise ValueError(f"{where}: a stac source needs source.aoi (a GeoJSON polygon file) or a bbox")
    season = raw.get("season")
    if season is not None:
        try:
            season = (str(season[0]), str(season[1]))
            a, b = (dt.date.fromisoformat(f"2001-{s}") for s in season)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{where}: source.season must be [MM-DD, MM-DD], got {raw.get('season')!r}") from exc
        if b < a:
            raise ValueError(f"{where}: source.season ends before it starts: {season}")
    bands = tuple(raw.get("bands", DEFAULT_BANDS))
    if bands[:3] != DEFAULT_BANDS or not set(bands[3:]) <= set(OPTIONAL_BANDS):
        raise ValueError(f"{where}: source.bands must be [B04, B03, B02] optionally + B08, got {list(bands)}")
    resampling = str(raw.get("resampling", "nearest"))
    if resampling not in RESAMPLING:
        raise ValueError(f"{where}: source.resampling must be one of {', '.join(RESAMPLING)}")
    sign = str(raw.get("sign", "none"))
    if sign not in SIGNERS:
        raise ValueError(f"{where}: source.sign must be one of {', '.join(SIGNERS)}")
    keys = dict(ASSET_KEYS)
    for band, names in dict(raw.get("asset_keys") or {}).items():
        keys[str(band)] = (names,) if isinstance(names, str) else tuple(names)
    return StacSource(
        api=api.rstrip("/"), collection=str(raw.get("collection", "sentinel-2-l2a")),
        aoi=str(raw["aoi"]) if raw.get("aoi") is not None else None, bbox=box_raw, season=season,
        max_scene_cloud=float(_number(raw, "max_scene_cloud", 50.0, where, hi=100.0)),
        scl_candidates=int(_number(raw, "scl_candidates", 4, where, lo=1)),
        bands=bands, stretch_max=int(_number(raw, "stretch_max", 3000, where, lo=1)),
        resampling=resampling, tile_px=int(_number(raw, "tile_px", 256, where, lo=8)),
        threads=int(_number(raw, "threads", 4, where, lo=1, hi=64)),
        chunk_tiles=int(_number(raw, "chunk_tiles", 16, where, lo=1)),
        timeout_s=float(_number(raw, "timeout_s", 30.0, where, lo=0.1)),
        retries=int(_number(raw, "retries", 4, where)), backoff_s=float(_number(raw, "backoff_s", 1.0, where)),
        page_size=int(_number(raw, "page_size", 100, where, lo=1)), sign=sign,
        resign_after_s=float(_number(raw, "resign_after_s", 1800.0, where, lo=1.0)), asset_keys=keys,
    )


def load_aoi(cfg: StacSource, base: Path | None = None) -> BaseGeometry:
    """The AOI as a lon/lat geometry: the polygon file's union, else the bbox.

    A file that is missing, not JSON, or holds no polygon is a ``ValueError`` naming the file."""
    if cfg.aoi is None:
        assert cfg.bbox is not None
        return box(*cfg.bbox)
    path = Path(cfg.aoi)
    if not path.is_absolute() and base is not None and not path.exists():
        path = base / path
    if not path.is_file():
        raise ValueError(f"AOI file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: AOI file is not GeoJSON ({exc})") from exc
    try:
        feats = data["features"] if data.get("type") == "FeatureCollection" else [data]
        geoms = [shape(f["geometry"] if f.get("type") == "Feature" else f) for f in feats]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: AOI file holds no readable GeoJSON geometry ({exc})") from exc
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    if not polys:
        raise ValueError(f"{path}: AOI file holds no polygon (found {', '.join(g.geom_type for g in geoms) or 'nothing'})")
    from shapely.ops import unary_union

    aoi = unary_union(polys)
    w, s, e, n = aoi.bounds
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ValueError(f"{path}: AOI is not in lon/lat degrees (bounds {aoi.bounds}); GeoJSON is EPSG:4326")
    return aoi
