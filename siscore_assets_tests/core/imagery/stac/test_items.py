"""Items as the public APIs write them (Earth Search v1, Planetary Computer): granule, CRS,
band hrefs and the harmonising offset are read from either spelling; AOI tiles follow a polygon."""

from __future__ import annotations

import mercantile
from shapely.geometry import Polygon

from siscore_assets.core.imagery.grid import Tile, aoi_tiles
from siscore_assets.core.imagery.stac import search
from siscore_assets.core.imagery.stac.config import parse_stac_source
from siscore_assets.core.imagery.stac.search import scene_from_item

CFG = parse_stac_source(
    {"kind": "stac", "api": "https://example.test", "bbox": [126, 38, 126.1, 38.1]}, "t"
)
GEOM = {
    "type": "Polygon",
    "coordinates": [[[125.8, 37.8], [127.0, 37.8], [127.0, 38.8], [125.8, 38.8], [125.8, 37.8]]],
}

EARTH_SEARCH = {  # the shape of an Earth Search v1 sentinel-2-l2a item (abridged)
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "S2B_52SCG_20220716_0_L2A",
    "geometry": GEOM,
    "properties": {
        "datetime": "2022-07-16T02:36:41.615000Z",
        "eo:cloud_cover": 3.2,
        "grid:code": "MGRS-52SCG",
        "mgrs:utm_zone": 52,
        "mgrs:latitude_band": "S",
        "mgrs:grid_square": "CG",
        "proj:epsg": 32652,
        "s2:processing_baseline": "04.00",
        "earthsearch:boa_offset_applied": False,
    },
    "assets": {
        "red": {
            "href": "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/52/S/CG/2022/7/"
            "S2B_52SCG_20220716_0_L2A/B04.tif",
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}],
        },
        "green": {"href": "https://x/B03.tif"},
        "blue": {"href": "https://x/B02.tif"},
        "nir": {"href": "https://x/B08.tif"},
        "scl": {"href": "https://x/SCL.tif"},
        "red-jp2": {"href": "s3://x/B04.jp2"},
    },
}

PLANETARY = {  # the shape of a Planetary Computer sentinel-2-l2a item (abridged)
    "type": "Feature",
    "stac_version": "1.0.0",
    "id": "S2A_MSIL2A_20210710T022551_R046_T51SZH_20210711T100428",
    "geometry": GEOM,
    "properties": {
        "datetime": "2021-07-10T02:25:51.024000Z",
        "eo:cloud_cover": 12.5,
        "s2:mgrs_tile": "51SZH",
        "proj:code": "EPSG:32651",
        "s2:processing_baseline": "03.00",
    },
    "assets": {
        b: {"href": f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/51/S/ZH/{b}.tif"}
        for b in ("B04", "B03", "B02", "B08", "SCL")
    },
}


def test_earth_search_item():
    s = scene_from_item(EARTH_SEARCH, CFG)
    assert (s.granule, s.epsg, s.date, s.cloud, s.baseline) == (
        "52SCG",
        32652,
        "2022-07-16",
        3.2,
        "04.00",
    )
    assert s.hrefs["B04"].endswith("/B04.tif") and s.hrefs["SCL"] == "https://x/SCL.tif"
    assert s.offset == 1000  # from raster:bands offset -0.1 / scale 0.0001
    applied = {
        **EARTH_SEARCH,
        "properties": {**EARTH_SEARCH["properties"], "earthsearch:boa_offset_applied": True},
    }
    assert scene_from_item(applied, CFG).offset == 0


def test_planetary_computer_item_and_b08():
    cfg = parse_stac_source(
        {
            "kind": "stac",
            "api": "https://x",
            "bbox": [126, 38, 126.1, 38.1],
            "bands": ["B04", "B03", "B02", "B08"],
        },
        "t",
    )
    s = scene_from_item(PLANETARY, cfg)
    assert (s.granule, s.epsg, s.offset) == ("51SZH", 32651, 0)
    assert list(s.hrefs) == ["B04", "B03", "B02", "B08", "SCL"]


def test_item_without_a_band_is_not_a_scene():
    broken = {**PLANETARY, "assets": {k: v for k, v in PLANETARY["assets"].items() if k != "B03"}}
    assert scene_from_item(broken, CFG) is None


def _variant(item_id: str, drop: tuple[str, ...] = (), **props) -> dict:
    kept = {k: v for k, v in EARTH_SEARCH["properties"].items() if k not in drop}
    return {**EARTH_SEARCH, "id": item_id, "properties": {**kept, **props}}


def test_a_malformed_item_is_skipped_naming_its_field_and_the_rest_go_on(monkeypatch):
    v0 = ("grid:code", "mgrs:latitude_band", "proj:epsg")  # Earth Search v0 without the band
    items = [
        _variant("bad_cloud", **{"eo:cloud_cover": None}),
        _variant("no_date", drop=("datetime",)),
        _variant("bad_date", datetime="July 2022"),
        _variant("v0_no_band", drop=v0),
        _variant("no_epsg", drop=("grid:code", "proj:epsg"), **{"mgrs:latitude_band": "9"}),
        EARTH_SEARCH,
    ]
    monkeypatch.setattr(search, "search_items", lambda cfg, aoi, year: items)
    scenes, skipped = search.search_scenes(CFG, Polygon(GEOM["coordinates"][0]), 2022)
    assert [s.item_id for s in scenes] == [EARTH_SEARCH["id"]]
    assert skipped == [
        "item bad_cloud: eo:cloud_cover: not a number: None",
        "item no_date: datetime: missing (nor start_datetime)",
        "item bad_date: datetime: not an ISO date: 'July 2022'",
        "item v0_no_band: mgrs:latitude_band: missing (mgrs:utm_zone is given)",
        "item no_epsg: proj:epsg: missing, and granule '529CG' is no MGRS id to infer it",
    ]


def test_aoi_tiles_follow_the_polygon():
    square = Polygon([(126.0, 38.0), (126.1, 38.0), (126.1, 38.08), (126.0, 38.08)])
    triangle = Polygon([(126.0, 38.0), (126.1, 38.0), (126.0, 38.08)])
    full, tri = aoi_tiles(square, 14), aoi_tiles(triangle, 14)
    assert (
        set(tri) < set(full) and len(full) == 25 and len(tri) == 19
    )  # the diagonal's tiles stay in
    ne = mercantile.tile(126.095, 38.075, 14)
    assert Tile(14, ne.x, ne.y) in full and Tile(14, ne.x, ne.y) not in tri
    assert tri == sorted(tri)
