"""Covariates from point/polygon layers: distances, EDZ dummies, site adjacency, districts."""

from __future__ import annotations

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
    return pd.DataFrame({"tile_id": [t.tile_id for t in ts], "z": Z, "x": [t.x for t in ts], "y": [t.y for t in ts]})


def _centre(x: int, y: int) -> tuple[float, float]:
    return Tile(Z, x, y).center_lonlat()


def test_distances_dummies_and_adjacency():
    cap = _centre(X0, Y0)
    mine = _centre(X0 + 4, Y0 + 4)
    zone = Tile(Z, X0 + 2, Y0).bounds_lonlat()
    poi = gpd.GeoDataFrame({
        "kind": ["capital", "provincial_hub", "county_hub", "mine", "nuclear_site", "edz", "edz"],
        "edz_type": [None, None, None, None, None, "tourism", "industrial"],
    }, geometry=[Point(cap), Point(_centre(X0 + 4, Y0)), Point(_centre(X0, Y0 + 4)), Point(mine),
                 Point(_centre(X0 + 2, Y0 + 2)), box(*zone), Point(_centre(X0, Y0 + 2))], crs="EPSG:4326")
    out = derive_covariates(_tiles(), poi.to_crs("EPSG:3857"), edz_types=("industrial", "tourism", "agricultural"),
                            edz_radius_km=0.5).set_index("tile_id")
    geod = Geod(ellps="WGS84")
    far = f"14/{X0 + 3}/{Y0 + 3}"
    lon, lat = _centre(X0 + 3, Y0 + 3)
    assert out.loc[far, "dist_capital_km"] == pytest.approx(geod.inv(lon, lat, *cap)[2] / 1000, rel=1e-6)
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
    tiles = pd.DataFrame([{"tile_id": t.tile_id, "z": t.z, "x": t.x, "y": t.y} for t in world.tiles])
    out = derive_covariates(tiles, world.points_of_interest(), world.districts())
    ref = world.tile_covariates()
    for col in ("dist_capital_km", "dist_provincial_km", "dist_county_km"):
        np.testing.assert_allclose(out[col], ref[col], rtol=5e-3, atol=0.05)
    assert (out["district_id"].astype(int) == ref["district_id"]).mean() > 0.95  # Voronoi vs nearest seat
