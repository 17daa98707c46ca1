"""The district-join benchmark runs on the real NK layer; its tiles' districts by grid-computed
centres are those of a spatial join of the tile squares' centroids (the rule before)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np

from benchmarks import district_join
from siscore_assets.core.analysis import districts


def test_both_joins_assign_the_same_tiles_as_a_spatial_join():
    a = district_join.one("tile_districts", 2000, district_join.LAYER)
    b = district_join.one("aggregate_by_district", 2000, district_join.LAYER)
    assert a["districts"] == b["districts"] == 178
    assert 0 < a["assigned"] == b["assigned"] < 2000
    tiles, layer = district_join.inputs(2000, district_join.LAYER)
    squares = districts.tile_polygons(tiles[["z", "x", "y"]])
    cent = gpd.GeoDataFrame(geometry=squares.geometry.centroid, crs=squares.crs)
    joined = gpd.sjoin(cent, layer[["geometry"]], how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    expect = joined["index_right"].fillna(-1).astype(np.int64).to_numpy()
    np.testing.assert_array_equal(districts.tile_districts(tiles, layer), expect)
