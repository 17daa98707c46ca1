"""Search a STAC API for Sentinel-2 L2A scenes over an AOI and year (pystac-client), as ``Scene``s.

Pages are followed through the API's ``next`` links; the whole search is retried with backoff
when a page fails, and an API that stays unreachable is an error naming its URL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

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


def granule_of(props: dict[str, Any]) -> str | None:
    """The MGRS granule of an item (Planetary Computer, Earth Search v1 and v0 spellings)."""
    if props.get("s2:mgrs_tile"):
        return str(props["s2:mgrs_tile"])
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code[5:]
    if props.get("mgrs:utm_zone") is not None:
        return (
            f"{int(props['mgrs:utm_zone']):02d}"
            f"{props.get('mgrs:latitude_band', '')}{props.get('mgrs:grid_square', '')}"
        )
    return None


def epsg_of(props: dict[str, Any], granule: str) -> int:
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code[5:])
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
    """A Scene, or None for an item lacking a band or its granule (reported by the caller)."""
    props = item.get("properties", {})
    granule = granule_of(props)
    if granule is None or item.get("geometry") is None:
        return None
    hrefs: dict[str, str] = {}
    first_asset = None
    for band in (*cfg.bands, "SCL"):
        key = next(
            (k for k in cfg.asset_keys.get(band, (band,)) if k in item.get("assets", {})), None
        )
        if key is None:
            if band == "SCL":
                continue  # no scene classification: the scene is ranked on eo:cloud_cover alone
            return None
        hrefs[band] = item["assets"][key]["href"]
        first_asset = first_asset or item["assets"][key]
    date = str(props.get("datetime") or props.get("start_datetime"))[:10]
    baseline = props.get("s2:processing_baseline")
    return Scene(
        item_id=str(item["id"]),
        granule=granule,
        date=date,
        cloud=float(props.get("eo:cloud_cover", 100.0)),
        epsg=epsg_of(props, granule),
        footprint=mapping(shape(item["geometry"])),
        hrefs=hrefs,
        baseline=str(baseline) if baseline is not None else None,
        offset=harmonise_offset(props, first_asset),
    )


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
        scene = scene_from_item(item, cfg)
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


def days_from(date: str, centre: dt.date) -> int:
    return abs((dt.date.fromisoformat(date) - centre).days)
