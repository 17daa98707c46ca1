"""Covariates from point/polygon layers: distances, EDZ dummies, site adjacency, districts."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Geod
from shapely.geometry import Point, box

from siscore_assets.core.analysis.covariates import derive_covariates
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec

Z, X0, Y0 = 14, 13903, 6163


def _tiles(n: int = 5) -> pd.DataFrame:
    ts = [Tile(Z, X0 + i, Y0 + j) for j in range(n) for i in range(n)]
    return pd.DataFrame(
        {"tile_id": [t.tile_id for t in ts], "z": Z, "x": [t.x for t in ts], "y": [t.y for t in ts]}
    )


def _centre(x: int, y: int) -> tuple[float, float]:
    return Tile(Z, x, y).center_lonlat()


def test_distances_dummies_and_adjacency():
    cap = _centre(X0, Y0)
    mine = _centre(X0 + 4, Y0 + 4)
    zone = Tile(Z, X0 + 2, Y0).bounds_lonlat()
    poi = gpd.GeoDataFrame(
        {
            "kind": [
                "capital",
                "provincial_hub",
                "county_hub",
                "mine",
                "nuclear_site",
                "edz",
                "edz",
            ],
            "edz_type": [None, None, None, None, None, "tourism", "industrial"],
        },
        geometry=[
            Point(cap),
            Point(_centre(X0 + 4, Y0)),
            Point(_centre(X0, Y0 + 4)),
            Point(mine),
            Point(_centre(X0 + 2, Y0 + 2)),
            box(*zone),
            Point(_centre(X0, Y0 + 2)),
        ],
        crs="EPSG:4326",
    )
    out = derive_covariates(
        _tiles(),
        poi.to_crs("EPSG:3857"),
        edz_types=("industrial", "tourism", "agricultural"),
        edz_radius_km=0.5,
    ).set_index("tile_id")
    geod = Geod(ellps="WGS84")
    far = f"14/{X0 + 3}/{Y0 + 3}"
    lon, lat = _centre(X0 + 3, Y0 + 3)
    assert out.loc[far, "dist_capital_km"] == pytest.approx(
        geod.inv(lon, lat, *cap)[2] / 1000, rel=1e-6
    )
    assert out.loc[f"14/{X0}/{Y0}", "dist_capital_km"] == pytest.approx(0.0, abs=1e-6)
    assert (out["dist_county_km"] <= out["dist_provincial_km"] + 1e-9).all()
    assert (out["dist_provincial_km"] <= out["dist_capital_km"] + 1e-9).all()
    assert out["edz_tourism"].sum() == 1 and out.loc[f"14/{X0 + 2}/{Y0}", "edz_tourism"]
    assert out["edz_industrial"].sum() == 1 and out.loc[f"14/{X0}/{Y0 + 2}", "edz_industrial"]
    assert not out["edz_agricultural"].any() and out["in_edz"].sum() == 2
    assert out["near_mine"].sum() == 4  # the corner tile and its 3 neighbours inside the block
    assert out["near_nuclear"].sum() == 9


def test_synthetic_country_covariates_agree_with_the_generator():
    """Derived from the synthetic layers, distances match the generator's own (which uses the
    Mercator scale factor at mid-latitude) to a fraction of a percent, and districts match."""
    world = SyntheticCountry(SyntheticSpec(nx=12, ny=12))
    tiles = pd.DataFrame(
        [{"tile_id": t.tile_id, "z": t.z, "x": t.x, "y": t.y} for t in world.tiles]
    )
    out = derive_covariates(tiles, world.points_of_interest(), world.districts())
    ref = world.tile_covariates()
    for col in ("dist_capital_km", "dist_provincial_km", "dist_county_km"):
        np.testing.assert_allclose(out[col], ref[col], rtol=5e-3, atol=0.05)
    assert (
        out["district_id"].astype(int) == ref["district_id"]
    ).mean() > 0.95  # Voronoi vs nearest seat


def _write(gdf: gpd.GeoDataFrame, path) -> str:
    gdf.to_file(path)
    return str(path)


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_one_layer_per_kind_gives_distances_type_dummies_and_clear_errors(tmp_path):
    """The paper's layers come one file per kind (ports, zones, mines, nuclear sites): each
    becomes a kind; a kind without a built-in meaning is a distance; mine types are dummies."""
    from siscore_assets.core.analysis.covariates import read_point_layers

    tiles = _tiles()
    port = gpd.GeoDataFrame(
        {"Name": ["P"]}, geometry=[Point(_centre(X0, Y0))], crs="EPSG:4326"
    ).to_crs("EPSG:32652")
    mines = gpd.GeoDataFrame(
        {"Type": ["Gold", "Rare Earth"]},
        geometry=[Point(_centre(X0 + 4, Y0 + 4)), Point(_centre(X0, Y0 + 4))],
        crs="EPSG:4326",
    )
    zones = gpd.GeoDataFrame(
        {"Class": ["Industrial"]},
        geometry=[box(*Tile(Z, X0 + 2, Y0 + 2).bounds_lonlat())],
        crs="EPSG:4326",
    )
    spec = {
        "port": _write(port, tmp_path / "ports.shp"),
        "mine": {"file": _write(mines, tmp_path / "mines.gpkg"), "type": "Type"},
        "edz": {"file": _write(zones, tmp_path / "zones.geojson"), "type": "Class"},
    }
    poi = read_point_layers(spec, lambda value: tmp_path / value)
    assert sorted(poi["kind"].unique()) == ["edz", "mine", "port"]
    out = derive_covariates(tiles, poi).set_index("tile_id")
    assert "dist_capital_km" not in out.columns  # no capital layer: no column, never a stand-in
    here = Tile(Z, X0, Y0).tile_id
    assert out.loc[here, "dist_port_km"] == pytest.approx(0.0, abs=1e-6)
    assert out["dist_port_km"].max() > 5
    assert out.loc[Tile(Z, X0 + 4, Y0 + 4).tile_id, "near_mine_gold"]
    assert not out.loc[Tile(Z, X0 + 4, Y0 + 4).tile_id, "near_mine_rare_earth"]
    assert out["near_mine"].sum() == out["near_mine_gold"].sum() + out["near_mine_rare_earth"].sum()
    assert (
        out.loc[Tile(Z, X0 + 2, Y0 + 2).tile_id, "edz_industrial"]
        and out["edz_industrial"].sum() == 1
    )

    (tmp_path / "polys.geojson").write_text(zones.to_json())  # a polygon where points are expected
    with pytest.raises(
        ValueError, match=r"polys\.geojson: the port covariate layer has Polygon geometries"
    ):
        read_point_layers({"port": "polys.geojson"}, lambda value: tmp_path / value)
    nocrs = gpd.GeoDataFrame({"a": [1]}, geometry=[Point(1, 2)])
    nocrs.to_file(tmp_path / "nocrs.shp")
    with pytest.raises(ValueError, match=r"nocrs\.shp: the port covariate layer has no CRS"):
        read_point_layers({"port": "nocrs.shp"}, lambda value: tmp_path / value)
    (tmp_path / "junk.geojson").write_text("{not json")
    with pytest.raises(ValueError, match=r"junk\.geojson: could not read the port covariate layer"):
        read_point_layers({"port": "junk.geojson"}, lambda value: tmp_path / value)
    with pytest.raises(ValueError, match=r"no column 'Kind'"):
        read_point_layers(
            {"mine": {"file": "mines.gpkg", "type": "Kind"}}, lambda value: tmp_path / value
        )


NK_LAYERS = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "nk_layers"


@pytest.mark.skipif(
    not (NK_LAYERS / "NK_district_statistics.shp").is_file(), reason="shared NK layers absent"
)
def test_prk_reads_the_papers_real_layers():
    """PRK's configured layers are the shared NK shapefiles: 178 districts with province and
    population, and every point kind with its types; the sample's tiles fall in Kosan (id 0)."""
    from siscore_assets.core.analysis.covariates import read_point_layers
    from siscore_assets.core.analysis.districts import district_layer_from_file
    from siscore_assets.core.countries import load_countries

    prk = load_countries().get("PRK")
    dist = district_layer_from_file(prk.layer_file("districts"), prk.layer_options("districts"))
    assert len(dist) == 178 and dist["province"].nunique() == 10 and dist["population"].gt(0).all()
    assert dist.loc[dist["district_id"] == 0, "district_name"].item() == "Kosan"
    poi = read_point_layers(prk.covariates, lambda value: prk.layer_file("covariates", value))
    assert poi["kind"].value_counts().to_dict() == {
        "mine": 399,
        "edz": 27,
        "checkpoint": 12,
        "port": 8,
        "nuclear_site": 7,
    }
    assert {"gold", "coal", "iron", "uranium"} <= set(poi["mine_type"].dropna())
    tiles = pd.DataFrame(
        [
            {"tile_id": f"14/{x}/{y}", "z": 14, "x": x, "y": y}
            for x, y in [(13990, 6266), (13991, 6267)]
        ]
    )
    cov = derive_covariates(tiles, poi, dist)
    assert (cov["district_id"] == 0).all() and cov["dist_port_km"].between(5, 60).all()
