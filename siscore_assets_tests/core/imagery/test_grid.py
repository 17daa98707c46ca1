import mercantile
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, box

from siscore_assets.core.imagery.grid import (
    Tile,
    aoi_tile_rows,
    aoi_tiles,
    block_bounds_3857,
    block_for_lonlat_bbox,
    parse_tile_id,
    tiles_in_block,
)


def test_tile_ids_both_spellings():
    assert parse_tile_id("14/13990/6259") == Tile(14, 13990, 6259)
    assert parse_tile_id("6259_13990") == Tile(14, 13990, 6259)  # the NK sample's row_column
    assert Tile(14, 13990, 6259).yx_name == "6259_13990"
    assert Tile(14, 13990, 6259).tile_id == "14/13990/6259"


@pytest.mark.parametrize("bad", ["", "14/1", "a_b", "14/x/3", "3/9/1"])
def test_bad_tile_ids_are_errors(bad):
    with pytest.raises(ValueError):
        parse_tile_id(bad)


def test_nk_tile_lies_where_the_readme_says():
    lon, lat = Tile(14, 13990, 6259).center_lonlat()
    assert abs(lon - 127.40) < 0.05 and abs(lat - 39.06) < 0.05  # the README rounds


def test_block_bounds_are_the_outer_tile_edges():
    left, bottom, right, top = block_bounds_3857(14, 100, 200, 3, 2)
    assert (left, top) == pytest.approx(tuple(mercantile.xy_bounds(100, 200, 14))[0::3])
    b = mercantile.xy_bounds(102, 201, 14)
    assert (right, bottom) == pytest.approx((b.right, b.bottom))
    assert len(tiles_in_block(14, 100, 200, 3, 2)) == 6


def test_block_for_bbox_round_trip():
    west, south, east, north = mercantile.bounds(13903, 6163, 14)
    assert block_for_lonlat_bbox(west, south, east, north) == (13903, 6163, 1, 1)


def _tiles_one_by_one(aoi, z):
    """The rule tile by tile (the old ingest code): every tile of mercantile's cover of the
    bounds whose box intersects the AOI."""
    out = []
    for t in mercantile.tiles(*aoi.bounds, zooms=z):
        b = mercantile.bounds(t)
        if aoi.intersects(box(b.west, b.south, b.east, b.north)):
            out.append(Tile(z, t.x, t.y))
    return sorted(out)


def _random_aois(seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        z = int(rng.choice([10, 12, 14]))
        lon, lat = rng.uniform(-179, 178), rng.uniform(-80, 80)
        kind = rng.integers(0, 4)
        if kind == 0:  # a bbox on tile edges: tiles that only touch it intersect it
            t = mercantile.tile(lon, lat, z)
            a, b = mercantile.bounds(t.x, t.y, z), mercantile.bounds(t.x + 2, t.y + 3, z)
            yield z, box(a.west, b.south, b.east, a.north)
        elif kind == 1:
            w, h = rng.uniform(0.001, 0.2, 2)
            yield z, box(lon, lat, lon + w, lat + h)
        elif kind == 2:  # a triangle: many tiles of its bounds are outside it
            pts = np.c_[lon + rng.uniform(0, 0.2, 3), lat + rng.uniform(0, 0.2, 3)]
            yield z, shapely.Polygon(pts)
        else:  # two islands: the tiles between them are left out
            yield (
                z,
                MultiPolygon(
                    [
                        box(lon, lat, lon + 0.03, lat + 0.03),
                        box(lon + 0.1, lat + 0.1, lon + 0.13, lat + 0.12),
                    ]
                ),
            )


def test_aoi_tiles_row_by_row_are_the_tiles_that_intersect_the_aoi():
    for z, aoi in _random_aois(0, 120):
        assert aoi_tiles(aoi, z) == _tiles_one_by_one(aoi, z)


def test_aoi_tile_rows_run_north_to_south_with_sorted_columns():
    aoi = shapely.Polygon([(125.0, 38.0), (125.3, 38.0), (125.0, 38.2)])
    rows = list(aoi_tile_rows(aoi, 14))
    ys = [y for y, _ in rows]
    assert ys == sorted(ys) and len(ys) == len(set(ys))  # y grows southwards
    assert all(np.all(np.diff(xs) > 0) for _, xs in rows)
    widths = [len(xs) for _, xs in rows]
    assert widths[0] < widths[-1]  # the triangle widens to the south
    assert sum(widths) == len(aoi_tiles(aoi, 14))


def test_an_empty_aoi_has_no_tiles():
    assert aoi_tiles(shapely.Polygon(), 14) == []
