"""Search a STAC API for Sentinel-2 L2A scenes over an AOI and year (pystac-client), as ``Scene``s.

Pages are followed through the API's ``next`` links; the whole search is retried with backoff
when a page fails, and an API that stays unreachable is an error naming its URL.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.remote import with_retries

BASELINE_OFFSET = 1000  # DN added to L2A reflectances from processing baseline 04.00 (Jan 2022)


@dataclass(frozen=True)
class Scene:
    """One STAC item, reduced to what selection and reading need."""

    item_id: str
    granule: str  # MGRS tile, e.g. 52SDG
    date: str  # ISO date of acquisition
    cloud: float  # eo:cloud_cover, %
    epsg: int
    footprint: dict  # GeoJSON geometry, lon/lat
    hrefs: dict[str, str]  # band (B04, ..., SCL) -> href
    baseline: str | None
    offset: int  # DN to subtract to harmonise (0 before baseline 04.00 or when already applied)

    @property
    def shape(self) -> BaseGeometry:
        return shape(self.footprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(**d)


MGRS = re.compile(r"\d{2}[C-HJ-NP-X][A-Z]{2}")  # zone, latitude band, 100 km square


class ItemError(ValueError):
    """A STAC item with a missing or malformed field: ``field`` names it (``eo:cloud_cover``,
    ``datetime``, ...), so the skip line says what to fix in the catalogue."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def granule_of(props: dict[str, Any]) -> str | None:
    """The MGRS granule of an item (Planetary Computer, Earth Search v1 and v0 spellings)."""
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"])
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code[5:]
    if props.get("mgrs:utm_zone") is not None:
        for key in ("mgrs:latitude_band", "mgrs:grid_square"):
            if not props.get(key):  # "52" + "" + "CD" would name another granule
                raise ItemError(key, "missing (mgrs:utm_zone is given)")
        try:
            zone = int(props["mgrs:utm_zone"])
        except (TypeError, ValueError):
            zone_ = props["mgrs:utm_zone"]
            raise ItemError("mgrs:utm_zone", f"not a zone number: {zone_!r}") from None
        return f"{zone:02d}{props['mgrs:latitude_band']}{props['mgrs:grid_square']}"
    return None


def epsg_of(props: dict[str, Any], granule: str) -> int:
    """The item's UTM EPSG code: ``proj:epsg`` / ``proj:code``, else from the granule's zone and
    latitude band (a malformed one is an :class:`ItemError`, never a guessed hemisphere)."""
    for key in ("proj:epsg", "proj:code"):
        value = props.get(key)
        if not value:
            continue
        text = str(value).upper().removeprefix("EPSG:")
        if not text.isdigit():
            raise ItemError(key, f"not an EPSG code: {value!r}")
        return int(text)
    if not MGRS.fullmatch(granule.upper()):
        raise ItemError("proj:epsg", f"missing, and granule {granule!r} is no MGRS id to infer it")
    zone, band = int(granule[:2]), granule[2].upper()
    return (32600 if band >= "N" else 32700) + zone


def harmonise_offset(props: dict[str, Any], asset: dict[str, Any] | None = None) -> int:
    """DN to subtract from an item's pixels so every baseline reads on the pre-2022 scale.

    Earth Search marks items it already harmonised (``earthsearch:boa_offset_applied``); an
    asset's ``raster:bands`` offset/scale says it explicitly; otherwise baseline >= 04.00 means
    the +1000 offset is in the pixels."""
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0
    for band in (asset or {}).get("raster:bands", []) or []:
        if band.get("offset") and band.get("scale"):
            return int(round(-float(band["offset"]) / float(band["scale"])))
    baseline = props.get("s2:processing_baseline")
    try:
        return BASELINE_OFFSET if baseline is not None and float(baseline) >= 4.0 else 0
    except ValueError:
        return 0


def scene_from_item(item: dict[str, Any], cfg: StacSource) -> Scene | None:
    """A Scene, or None for an item lacking a band or its granule (reported by the caller); a
    malformed field (null cloud cover, no date, ...) is an :class:`ItemError` naming it."""
    props = item.get("properties") or {}
    granule = granule_of(props)
    if granule is None or item.get("geometry") is None:
        return None
    hrefs: dict[str, str] = {}
    first_asset = None
    assets = item.get("assets") or {}
    for band in (*cfg.bands, "SCL"):
        key = next((k for k in cfg.asset_keys.get(band, (band,)) if k in assets), None)
        if key is None:
            if band == "SCL":
                continue  # no scene classification: the scene is ranked on eo:cloud_cover alone
            return None
        href = (assets[key] or {}).get("href")
        if not isinstance(href, str) or not href:
            raise ItemError(f"assets.{key}.href", f"missing or not a string: {href!r}")
        hrefs[band] = href
        first_asset = first_asset or assets[key]
    baseline = props.get("s2:processing_baseline")
    return Scene(
        item_id=str(item["id"]),
        granule=granule,
        date=_date_of(props),
        cloud=_cloud_of(props),
        epsg=epsg_of(props, granule),
        footprint=_footprint_of(item),
        hrefs=hrefs,
        baseline=str(baseline) if baseline is not None else None,
        offset=harmonise_offset(props, first_asset),
    )


def _date_of(props: dict[str, Any]) -> str:
    key = "datetime" if props.get("datetime") else "start_datetime"
    value = props.get(key)
    if not value:
        raise ItemError("datetime", "missing (nor start_datetime)")
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise ItemError(key, f"not an ISO date: {value!r}") from None


def _cloud_of(props: dict[str, Any]) -> float:
    """``eo:cloud_cover`` (%); absent reads as 100 (ordered last), null or garbage is an error."""
    value = props.get("eo:cloud_cover", 100.0)
    try:
        cloud = float(value)
    except (TypeError, ValueError):
        raise ItemError("eo:cloud_cover", f"not a number: {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(cloud):
        raise ItemError("eo:cloud_cover", f"not a number: {value!r}")
    return cloud


def _footprint_of(item: dict[str, Any]) -> dict:
    try:
        geom = shape(item["geometry"])
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ItemError("geometry", f"not a GeoJSON geometry ({exc})") from None
    if geom.is_empty:
        raise ItemError("geometry", "empty")
    return mapping(geom)


def search_items(cfg: StacSource, aoi: BaseGeometry, year: int) -> list[dict[str, Any]]:
    """Every item of the collection intersecting the AOI in the year's season window (all pages)."""
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    def run() -> list[dict[str, Any]]:
        io = StacApiIO(timeout=cfg.timeout_s, max_retries=0)
        client = Client.open(cfg.api, stac_io=io, timeout=cfg.timeout_s)
        # the convex hull: a superset with few vertices (a country's coastline is too long a query)
        search = client.search(
            collections=[cfg.collection],
            intersects=mapping(aoi.convex_hull),
            datetime=cfg.datetime_range(year),
            limit=cfg.page_size,
        )
        items: list[dict[str, Any]] = []
        for page in search.pages_as_dicts():
            items.extend(page.get("features", []))
        return items

    return with_retries(
        run,
        f"STAC search {cfg.api} (collection {cfg.collection}, {year})",
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
    )


def search_scenes(cfg: StacSource, aoi: BaseGeometry, year: int) -> tuple[list[Scene], list[str]]:
    """The year's scenes over the AOI, and one line per item that could not be used.

    No scene at all is an error naming the API, collection, dates and AOI bounds."""
    items = search_items(cfg, aoi, year)
    scenes, skipped = [], []
    for item in items:
        try:
            scene = scene_from_item(item, cfg)
        except ItemError as exc:  # one bad item: recorded, the rest go on
            skipped.append(f"item {item.get('id')}: {exc.field}: {exc.problem}")
            continue
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            skipped.append(f"item {item.get('id')}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if scene is None:
            skipped.append(
                f"item {item.get('id')}: no MGRS granule, geometry or band asset {list(cfg.bands)}"
            )
        else:
            scenes.append(scene)
    if not scenes:
        start, end = cfg.season_window(year)
        raise LookupError(
            f"no {cfg.collection} scene in {cfg.api} for {start}..{end} over AOI bounds "
            f"{tuple(round(v, 4) for v in aoi.bounds)}"
            + (f" ({len(items)} unusable item(s))" if items else "")
        )
    scenes.sort(key=lambda s: (s.granule, s.date, s.item_id))
    return scenes, skipped


def on_aoi(scenes: list[Scene], aoi: BaseGeometry) -> tuple[list[Scene], list[str]]:
    """(the scenes whose footprint meets the AOI, one line per granule some were left out of).

    The search asks for the AOI's convex hull (a coastline is too long a query), so an
    archipelago's sea granules, and swath-edge scenes, come back without a pixel of the AOI:
    measuring their SCL would only cost reads and report a cloud skip that is none."""
    if not scenes:
        return [], []
    area = shapely.from_wkb(aoi.wkb)  # prepared here, the caller's geometry left as it is
    shapely.prepare(area)
    meets = shapely.intersects(area, [s.shape for s in scenes])
    left: dict[str, int] = {}
    for s, m in zip(scenes, meets):
        if not m:
            left[s.granule] = left.get(s.granule, 0) + 1
    lines = [
        f"granule {g}: {n} scene(s) whose footprint misses the AOI (found by its convex hull), "
        "not read"
        for g, n in sorted(left.items())
    ]
    return [s for s, m in zip(scenes, meets) if m], lines


def days_from(date: str, centre: dt.date) -> int:
    return abs((dt.date.fromisoformat(date) - centre).days)
