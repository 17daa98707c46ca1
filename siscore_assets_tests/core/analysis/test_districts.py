"""Districts: tile squares, centroid and area-weighted aggregation, reprojection, reading."""

from __future__ import annotations

import geopandas as gpd
import mercantile
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from siscore_assets.core.analysis.districts import (
    aggregate_by_district,
    read_polygons,
    tile_coverage,
    tile_districts,
    tile_polygons,
)
from siscore_assets.core.analysis.indicators import assign_tiles
from siscore_assets.core.imagery.grid import Tile

Z = 14
T0 = mercantile.tile(125.75, 39.03, Z)
X0, Y0 = T0.x, T0.y


def _tiles() -> pd.DataFrame:
    """3 columns x 2 rows; score 1 2 3 / 4 5 6 (row-major)."""
    rows = [
        {"z": Z, "x": X0 + c, "y": Y0 + r, "score": float(3 * r + c + 1), "pop": 10.0}
        for r in range(2)
        for c in range(3)
    ]
    return pd.DataFrame(rows)


def _districts() -> gpd.GeoDataFrame:
    """A: column 0 plus the left quarter of column 1; B: the rest; C: far away, no tiles."""
    left, _, right0, top = Tile(Z, X0, Y0).bounds_3857()
    _, bottom, right, _ = Tile(Z, X0 + 2, Y0 + 1).bounds_3857()
    w = right0 - left
    cut = right0 + 0.25 * w
    return gpd.GeoDataFrame(
        {"district_id": ["A", "B", "C"]},
        geometry=[
            box(left, bottom, cut, top),
            box(cut, bottom, right, top),
            box(left + 100 * w, bottom, left + 101 * w, top),
        ],
        crs="EPSG:3857",
    )


def _check_known(out: pd.DataFrame) -> None:
    o = out.set_index("district_id")
    # centroid assignment: A = {1, 4}; B = {2, 3, 5, 6}
    assert o.loc["A", "n_tiles"] == 2 and o.loc["B", "n_tiles"] == 4 and o.loc["C", "n_tiles"] == 0
    assert o.loc["A", "score_mean"] == pytest.approx(2.5)
    assert o.loc["A", "score_sum"] == pytest.approx(5.0)
    assert o.loc["B", "score_mean"] == pytest.approx(4.0)
    assert o.loc["B", "score_sum"] == pytest.approx(16.0)
    assert o.loc["B", "pop_sum"] == pytest.approx(40.0)
    assert np.isnan(o.loc["C", "score_mean"]) and np.isnan(o.loc["C", "score_sum"])
    assert o.loc["C", "score_count"] == 0
    # area weights: A = col0 full + col1 quarter; B = col1 three quarters + col2 full
    assert o.loc["A", "score_area_mean"] == pytest.approx((5 + 7 * 0.25) / 2.5, rel=1e-6)
    assert o.loc["B", "score_area_mean"] == pytest.approx((7 * 0.75 + 9) / 3.5, rel=1e-6)
    assert np.isnan(o.loc["C", "score_area_mean"])
    tile_area = Tile(Z, X0, Y0).bounds_3857()
    a = (tile_area[2] - tile_area[0]) * (tile_area[3] - tile_area[1])
    assert o.loc["A", "area_m2"] == pytest.approx(2.5 * a, rel=1e-6)
    assert o.loc["B", "area_m2"] == pytest.approx(3.5 * a, rel=1e-6)


def test_tile_polygons_exact_bounds_and_columns():
    df = _tiles()
    g = tile_polygons(df)
    assert g.crs.to_epsg() == 3857
    assert list(g.columns[:-1]) == list(df.columns)
    for row in g.itertuples():
        assert row.geometry.bounds == Tile(Z, row.x, row.y).bounds_3857()


def test_aggregate_known_values():
    out = aggregate_by_district(_tiles(), ["score", "pop"], _districts())
    assert list(out["district_id"]) == ["A", "B", "C"]
    _check_known(out)
    assert out.attrs["n_outside"] == 0 and out.attrs["n_assigned"] == 6


def test_tile_districts_is_the_centroid_assignment():
    tiles = pd.concat([_tiles(), pd.DataFrame([{"z": Z, "x": X0 + 50, "y": Y0}])])
    where = tile_districts(tiles, _districts().iloc[::-1])  # positions in the layer given
    # reversed layer: C 0, B 1, A 2; tiles 1, 4 in A, the rest in B, the far tile in none
    assert where.tolist() == [2, 1, 1, 2, 1, 1, -1]
    with pytest.raises(KeyError, match="no column 'code'"):
        tile_districts(tiles, _districts(), id_col="code")


def test_overlapping_districts_and_centres_on_an_edge():
    """A centre in two overlapping districts goes to the first in layer order and is counted
    ambiguous; a centre exactly on a district's edge is not in its interior; every rule that
    assigns tiles (the aggregate, the positions, the indicators) agrees."""
    tiles = _tiles()
    left, _, right0, top = Tile(Z, X0, Y0).bounds_3857()
    _, bottom, right, _ = Tile(Z, X0 + 2, Y0 + 1).bounds_3857()
    cx0 = (left + right0) / 2
    layer = gpd.GeoDataFrame(
        {"district_id": [7, 8]},
        geometry=[
            box(left, bottom, right, top),  # all six tiles
            box(cx0, bottom, right, top),  # overlaps: column 0's centres lie on its edge
        ],
        crs="EPSG:3857",
    )
    assert tile_districts(tiles, layer).tolist() == [0] * 6
    assert tile_districts(tiles, layer.iloc[::-1]).tolist() == [1, 0, 0, 1, 0, 0]
    out = aggregate_by_district(tiles, ["score"], layer.iloc[::-1]).set_index("district_id")
    assert out.loc[8, "n_tiles"] == 4 and out.loc[7, "n_tiles"] == 2
    assert out.attrs["n_ambiguous"] == 4 and out.attrs["n_outside"] == 0
    tiles["tile_id"] = [f"{Z}/{x}/{y}" for x, y in zip(tiles["x"], tiles["y"], strict=True)]
    assigned = assign_tiles(tiles, layer.iloc[::-1])
    assert assigned.index.is_monotonic_increasing
    assert dict(assigned) == {
        t: (7 if x == X0 else 8) for t, x in zip(tiles["tile_id"], tiles["x"], strict=True)
    }


def test_tile_coverage_counts_the_tiles_each_district_holds_of_its_own():
    tiles, layer = _tiles(), _districts()
    assert tile_coverage(tile_districts(tiles, layer), layer, Z).tolist() == [1.0, 1.0, 0.0]
    some = tiles.drop(index=[1])  # column 1, row 0 missing (cloudy): B holds 3 of its 4
    assert tile_coverage(tile_districts(some, layer), layer, Z).tolist() == [1.0, 0.75, 0.0]
    wgs = layer.to_crs("EPSG:4326")  # any CRS: counted on the grid's own squares
    assert tile_coverage(tile_districts(some, wgs), wgs, Z) == pytest.approx([1.0, 0.75, 0.0])


def test_aggregate_reprojects_4326_districts():
    d4326 = _districts().to_crs("EPSG:4326")
    assert d4326.crs.to_epsg() == 4326
    _check_known(aggregate_by_district(_tiles(), ["score", "pop"], d4326))


def test_outside_tiles_and_nan_values():
    df = pd.concat(
        [_tiles(), pd.DataFrame([{"z": Z, "x": X0 + 50, "y": Y0, "score": 99.0, "pop": 1.0}])],
        ignore_index=True,
    )
    df.loc[0, "score"] = np.nan  # tile (0, 0) in A
    out = aggregate_by_district(df, ["score"], _districts()).set_index("district_id")
    assert out.attrs["n_outside"] == 1 and out.attrs["n_tiles"] == 7
    assert out.loc["A", "n_tiles"] == 2 and out.loc["A", "score_count"] == 1
    assert out.loc["A", "score_mean"] == pytest.approx(4.0)
    assert out.loc["A", "score_area_mean"] == pytest.approx((4 + 7 * 0.25) / 1.5, rel=1e-6)


def test_aggregate_errors():
    d = _districts()
    with pytest.raises(KeyError):
        aggregate_by_district(_tiles(), ["score"], d, id_col="name")
    with pytest.raises(ValueError, match="duplicate"):
        aggregate_by_district(_tiles(), ["score"], pd.concat([d, d]))


def test_read_polygons(tmp_path):
    d = _districts().to_crs("EPSG:4326").rename(columns={"district_id": "name"})
    for name in ("d.gpkg", "d.geojson", "d.shp"):
        d.to_file(tmp_path / name)
        back = read_polygons(tmp_path / name)
        assert len(back) == 3 and back.crs.to_epsg() == 4326
        assert list(back["name"]) == ["A", "B", "C"]
    with pytest.raises(FileNotFoundError, match="nope.gpkg"):
        read_polygons(tmp_path / "nope.gpkg")
    pts = gpd.GeoDataFrame({"district_id": ["p"]}, geometry=[Point(125.7, 39.0)], crs="EPSG:4326")
    pts.to_file(tmp_path / "pts.geojson")
    with pytest.raises(ValueError, match="no polygon"):
        read_polygons(tmp_path / "pts.geojson")


def _irregular_districts() -> gpd.GeoDataFrame:
    """Two districts whose border cuts through tiles at an angle, densified so that reprojection
    into any CRS keeps the same shapes (to well under a metre)."""
    from shapely.geometry import Polygon

    left, _, _, top = Tile(Z, X0, Y0).bounds_3857()
    _, bottom, right, _ = Tile(Z, X0 + 2, Y0 + 1).bounds_3857()
    w = right - left
    a = Polygon([(left, bottom), (left + 0.30 * w, bottom), (left + 0.55 * w, top), (left, top)])
    b = Polygon([(left + 0.30 * w, bottom), (right, bottom), (right, top), (left + 0.55 * w, top)])
    d = gpd.GeoDataFrame({"district_id": ["west", "east"]}, geometry=[a, b], crs="EPSG:3857")
    return d.set_geometry(d.geometry.segmentize(20.0))


def test_same_answer_from_wgs84_and_utm_layers(tmp_path):
    """The same districts stored as GeoJSON in EPSG:4326 and as a GeoPackage in UTM 52N give the
    same aggregates: the layer's CRS does not matter."""
    d = _irregular_districts()
    d.to_crs("EPSG:4326").to_file(tmp_path / "d4326.geojson")
    d.to_crs("EPSG:32652").to_file(tmp_path / "dutm.gpkg")
    a = read_polygons(tmp_path / "d4326.geojson")
    b = read_polygons(tmp_path / "dutm.gpkg")
    assert a.crs.to_epsg() == 4326 and b.crs.to_epsg() == 32652
    out_a = aggregate_by_district(_tiles(), ["score", "pop"], a).set_index("district_id")
    out_b = aggregate_by_district(_tiles(), ["score", "pop"], b).set_index("district_id")
    ref = aggregate_by_district(_tiles(), ["score", "pop"], d).set_index("district_id")
    for out in (out_a, out_b):
        assert (out["n_tiles"] == ref["n_tiles"]).all() and out["n_tiles"].sum() == 6
        for col in (
            "score_mean",
            "score_sum",
            "pop_sum",
            "score_area_mean",
            "pop_area_mean",
            "area_km2",
        ):
            np.testing.assert_allclose(out[col], ref[col], rtol=1e-5)
    # ground area (equal-area CRS) is smaller than Mercator area by about cos²(lat)
    lat = np.radians(39.03)
    np.testing.assert_allclose(ref["area_km2"] * 1e6 / ref["area_m2"], np.cos(lat) ** 2, rtol=2e-3)


def test_layer_without_crs_or_polygons_is_a_clear_error(tmp_path):
    d = _districts().rename(columns={"district_id": "id"})  # shapefile names are ≤ 10 characters
    d.to_file(tmp_path / "nocrs.shp")
    (tmp_path / "nocrs.prj").unlink()
    with pytest.raises(ValueError, match=r"nocrs\.shp has no CRS"):
        read_polygons(tmp_path / "nocrs.shp")
    pts = gpd.GeoDataFrame({"district_id": ["p"]}, geometry=[Point(125.7, 39.0)], crs="EPSG:4326")
    pts.to_file(tmp_path / "pts.gpkg")
    with pytest.raises(
        ValueError, match=r"pts\.gpkg has no polygon features \(geometry types found: Point\)"
    ):
        read_polygons(tmp_path / "pts.gpkg")
    (tmp_path / "junk.geojson").write_text("{not json")
    with pytest.raises(ValueError, match="could not read polygons from .*junk.geojson"):
        read_polygons(tmp_path / "junk.geojson")


def test_district_fields_by_role_and_population_from_density(tmp_path):
    """The NK layer's shape: an id column, a province column and 2008 densities (per km²)."""
    from siscore_assets.core.analysis.districts import district_layer_from_file

    polys = [box(*Tile(14, 13903 + i, 6163).bounds_lonlat()) for i in range(2)]
    gdf = gpd.GeoDataFrame(
        {
            "FID": [7, 3],
            "Level1": ["A", "B"],
            "Level2": ["a1", "b1"],
            "Pop": [100.0, 10.0],
            "province": ["stale", "stale"],
        },
        geometry=polys,
        crs="EPSG:4326",
    ).to_crs("EPSG:32652")
    path = tmp_path / "d.shp"
    gdf.to_file(path)
    out = district_layer_from_file(
        path, {"id": "FID", "province": "Level1", "name": "Level2", "population_density": "Pop"}
    )
    assert out["district_id"].tolist() == [7, 3] and out["province"].tolist() == ["A", "B"]
    assert out["district_name"].tolist() == ["a1", "b1"] and "province_file" in out.columns
    assert np.allclose(out["population"], out["population_density"] * out["area_km2"])
    assert (
        out["area_km2"].between(3.2, 3.7).all()
    )  # a zoom-14 tile at 40.4° N: (2.446 km x cos lat)²
    with pytest.raises(ValueError, match=r"d\.shp: no column\(s\) id: NOPE"):
        district_layer_from_file(path, {"id": "NOPE"})
    with pytest.raises(ValueError, match="unknown district field role"):
        district_layer_from_file(path, {"pop": "Pop"})


def test_chunked_work_gives_the_same_answer(monkeypatch):
    """Tile squares and grid centres are made a chunk at a time (bounded memory at 400,000
    tiles or a continent-wide district): one tile per chunk changes nothing."""
    from siscore_assets.core.analysis import districts

    tiles, layer = _tiles(), _districts()
    ref = aggregate_by_district(tiles, ["score", "pop"], layer)
    cover = tile_coverage(tile_districts(tiles, layer), layer, Z)
    monkeypatch.setattr(districts, "TILE_CHUNK", 1)
    pd.testing.assert_frame_equal(aggregate_by_district(tiles, ["score", "pop"], layer), ref)
    assert tile_coverage(tile_districts(tiles, layer), layer, Z).tolist() == cover.tolist()
    _check_known(ref)


def test_area_weights_with_holes_and_multipolygons_match_cutting_every_tile():
    """Only tiles a boundary crosses are cut; a tile inside a district's hole, or in the gap of
    a MultiPolygon, gets none of its area, as when every tile is cut (the rule before)."""
    tiles = pd.DataFrame(
        [
            {"z": Z, "x": X0 + c, "y": Y0 + r, "score": float(c + 5 * r)}
            for r in range(5)
            for c in range(5)
        ]
    )
    left, top = Tile(Z, X0, Y0).bounds_3857()[0], Tile(Z, X0, Y0).bounds_3857()[3]
    right, bottom = (
        Tile(Z, X0 + 4, Y0 + 4).bounds_3857()[2],
        Tile(Z, X0 + 4, Y0 + 4).bounds_3857()[1],
    )
    w = (right - left) / 5
    outer = box(left + 0.3 * w, bottom + 0.3 * w, right - 0.3 * w, top - 0.3 * w)
    hl, hb, hr, ht = Tile(Z, X0 + 2, Y0 + 2).bounds_3857()  # the centre tile lies inside
    holed = outer.difference(box(hl - 0.2 * w, hb - 0.2 * w, hr + 0.2 * w, ht + 0.2 * w))
    parts = box(left, bottom, left + 0.9 * w, top).union(box(right - 1.2 * w, bottom, right, top))
    layer = gpd.GeoDataFrame({"district_id": [1, 2]}, geometry=[holed, parts], crs="EPSG:3857")
    out = aggregate_by_district(tiles, ["score"], layer).set_index("district_id")
    cut = gpd.overlay(tile_polygons(tiles), layer, how="intersection", keep_geom_type=True)
    cut["a"] = cut.geometry.area
    for d, got in out.iterrows():
        mine = cut[cut["district_id"] == d]
        assert got["area_m2"] == pytest.approx(mine["a"].sum(), rel=1e-12)
        expect = (mine["score"] * mine["a"]).sum() / mine["a"].sum()
        assert got["score_area_mean"] == pytest.approx(expect, rel=1e-12)
