import mercantile
import pytest

from siscore_assets.core.imagery.grid import (
    Tile,
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
