"""The stac source block and the AOI file: a wrong value is one clear error naming it."""

from __future__ import annotations

import json

import pytest

from siscore_assets.core.imagery.stac.config import (
    StacBlockError,
    load_aoi,
    parse_stac_block,
    parse_stac_source,
)

GOOD = {"kind": "stac", "api": "https://example.test/v1", "bbox": [125.9, 38.0, 126.1, 38.1]}


def test_defaults_and_season():
    cfg = parse_stac_source({**GOOD, "season": ["06-01", "08-31"]}, "f: country X")
    assert cfg.collection == "sentinel-2-l2a" and cfg.bands == ("B04", "B03", "B02")
    assert cfg.datetime_range(2022) == "2022-06-01T00:00:00Z/2022-08-31T23:59:59Z"
    assert cfg.season_centre(2022).isoformat() == "2022-07-16"
    assert (
        parse_stac_source({**GOOD, "bands": ["B04", "B03", "B02", "B08"]}, "w").bands[-1] == "B08"
    )


def test_a_season_across_the_new_year_is_the_winter_ending_in_that_year():
    cfg = parse_stac_source({**GOOD, "season": ["11-01", "03-31"]}, "f: country X")
    assert cfg.datetime_range(2024) == "2023-11-01T00:00:00Z/2024-03-31T23:59:59Z"
    assert cfg.season_centre(2024).isoformat() == "2024-01-15"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"api": "ftp://x"}, "source.api"),
        ({"bbox": None}, "needs source.aoi"),
        ({"bbox": [1, 2, 0, 3]}, "bbox must be"),
        ({"season": ["13-01", "08-31"]}, "source.season"),
        ({"season": ["02-29", "08-31"]}, "source.season"),
        ({"season": ["6-1", "08-31"]}, "source.season"),
        ({"bands": ["B02", "B03", "B04"]}, "source.bands"),
        ({"max_scene_cloud": 120}, "max_scene_cloud"),
        ({"threads": "many"}, "source.threads must be an integer, got 'many'"),
        ({"sign": "aws"}, "source.sign"),
        ({"colour": "red"}, "unknown stac source setting(s) colour"),
        ({"collection": 5}, "source.collection must be"),
        ({"bbox": "everywhere"}, "bbox must be"),
        ({"bbox": [126, 38, 126.1, True]}, "bbox must be"),
        ({"bbox": [500000, 4200000, 510000, 4210000]}, "in lon/lat degrees"),
        ({"aoi": 5}, "source.aoi must be the path"),
        ({"season": "summer"}, "source.season must be"),
        ({"season": {"from": "06-01"}}, "source.season must be"),
        ({"season": ["06-01", "07-01", "08-01"]}, "source.season must be"),
        ({"bands": "B04"}, "source.bands"),
        ({"bands": ["B04", "B03", "B02", ["B08"]]}, "source.bands"),
        ({"bands": ["B04", "B03", "B02", "B08", "B08"]}, "source.bands"),
        ({"resampling": "lanczos"}, "source.resampling"),
        ({"asset_keys": ["red"]}, "source.asset_keys must be a mapping"),
        ({"asset_keys": {"B04": 5}}, "source.asset_keys.B04 must be"),
        ({"tile_px": 4}, "source.tile_px must be >= 8, got 4"),
        ({"retries": True}, "source.retries must be an integer, got True"),
    ],
)
def test_bad_values_name_the_setting(change, words):
    raw = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ValueError, match="f: country X") as err:
        parse_stac_source(raw, "f: country X")
    assert words in str(err.value)


@pytest.mark.parametrize(
    "raw, bbox, keys",
    [
        ({**GOOD, "colour": "red"}, None, ("source", "colour")),
        ({k: v for k, v in GOOD.items() if k != "api"}, None, ("source", "api")),
        ({**GOOD, "asset_keys": {"B04": 5}}, None, ("source", "asset_keys", "B04")),
        (
            {k: v for k, v in GOOD.items() if k != "bbox"},
            [1, 2, 0, 3],
            ("bbox",),
        ),  # the country's own bbox
        ({k: v for k, v in GOOD.items() if k != "bbox"}, None, ("source",)),
    ],
)
def test_a_problem_names_its_key_path_for_the_countries_file(raw, bbox, keys):
    with pytest.raises(StacBlockError) as err:
        parse_stac_block(raw, bbox)
    assert err.value.keys == keys


def test_the_country_bbox_is_the_default_and_asset_keys_extend_the_defaults():
    cfg = parse_stac_source(
        {"kind": "stac", "api": "https://x", "asset_keys": {"B04": ["red", "B4"], "B08": "nir08"}},
        "w",
        bbox=(126, 38, 126.1, 38.1),
    )
    assert cfg.bbox == (126.0, 38.0, 126.1, 38.1) and cfg.asset_keys["B04"] == ("red", "B4")
    assert cfg.asset_keys["B08"] == ("nir08",) and cfg.asset_keys["SCL"] == ("SCL", "scl")


def test_aoi_polygon_file(tmp_path):
    path = tmp_path / "aoi.geojson"
    poly = {"type": "Polygon", "coordinates": [[[126, 38], [126.1, 38], [126.1, 38.1], [126, 38]]]}
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "geometry": poly, "properties": {}}],
            }
        )
    )
    aoi = load_aoi(parse_stac_source({**GOOD, "aoi": str(path)}, "w"))
    assert aoi.geom_type == "Polygon" and aoi.bounds == (126, 38, 126.1, 38.1)


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "is not GeoJSON"),
        ('{"type": "Point", "coordinates": [126, 38]}', "holds no polygon (found Point)"),
        ('{"type": "Feature", "geometry": {"type": "Polygon"}}', "no readable GeoJSON geometry"),
        (
            '{"type": "Polygon", "coordinates": [[[500000, 4200000], [510000, 4200000], '
            '[510000, 4210000], [500000, 4200000]]]}',
            "not in lon/lat",
        ),
    ],
)
def test_aoi_file_that_does_not_parse(tmp_path, text, words):
    path = tmp_path / "aoi.geojson"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)) as err:
        load_aoi(parse_stac_source({**GOOD, "aoi": str(path)}, "w"))
    assert words in str(err.value)


BOWTIE = [[[126.0, 38.0], [126.1, 38.1], [126.1, 38.0], [126.0, 38.1], [126.0, 38.0]]]
STRAY_HOLE = [
    [[126.0, 38.0], [126.1, 38.0], [126.1, 38.1], [126.0, 38.1], [126.0, 38.0]],
    [[126.15, 38.02], [126.18, 38.02], [126.16, 38.05], [126.15, 38.02]],  # outside its shell
]


@pytest.mark.parametrize(
    "rings, reason", [(BOWTIE, "Self-intersection"), (STRAY_HOLE, "Hole lies outside shell")]
)
def test_an_invalid_aoi_polygon_names_the_file_feature_and_reason(tmp_path, rings, reason):
    """Hand-drawn boundaries: GEOS would fail the union with a bare TopologyException."""
    good = [[[126.2, 38.2], [126.3, 38.2], [126.3, 38.3], [126.2, 38.2]]]
    feats = [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": c}}
        for c in (good, rings)
    ]
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    with pytest.raises(ValueError, match=f"{path}: feature 1: invalid polygon \\({reason}"):
        load_aoi(parse_stac_source({**GOOD, "aoi": str(path)}, "w"))


def test_aoi_file_missing(tmp_path):
    with pytest.raises(ValueError, match="AOI file not found"):
        load_aoi(parse_stac_source({**GOOD, "aoi": str(tmp_path / "nope.geojson")}, "w"))


def test_granule_patches_defaults_to_the_reproductions_32_by_343_px():
    from siscore_assets.core.imagery.stac.config import parse_stac_source

    base = {"kind": "stac", "api": "http://127.0.0.1:1", "bbox": [125.9, 38.0, 126.1, 38.1]}
    assert parse_stac_source(base, "t").granule_patches is None
    assert parse_stac_source({**base, "granule_patches": False}, "t").granule_patches is None
    assert parse_stac_source({**base, "granule_patches": True}, "t").granule_patches == (32, 343)
    assert parse_stac_source({**base, "granule_patches": {"px": 256}}, "t").granule_patches == (
        32,
        256,
    )
