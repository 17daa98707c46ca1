"""A tiny tile-folder country whose every ground layer is a real-format file (no `generated`):
districts as a UTM GeoPackage with a province and a 2008-style density, nightlights as one
EPSG:4326 GeoTIFF a year, covariates as one file per kind (ports, mines by type, a zone
polygon).  It materialises every asset from empty storage in `plan_waves` order: `proxies` and
`covariates` read `patches` only after it exists, and the regression runs on the real layers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from dagster import AssetKey, DagsterInstance
from rasterio.transform import from_bounds
from shapely.geometry import Point, box

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.orchestration.runner import materialize_country
from siscore_assets_tests.defs.test_tile_folder_country import (
    COUNTRIES,
    make_sample,
    save_image,
    tile_image,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real_layers_country")]

Z = 14
EXTRA = [
    (6259, 13992),
    (6260, 13992),
    (6261, 13992),
    (6262, 13992),
]  # (y, x): a third column of tiles
NIGHTLIGHT = {2016: 1.5, 2017: 4.0}


def _bounds(x0: int, y0: int, x1: int, y1: int) -> tuple[float, float, float, float]:
    w, s, _, _ = Tile(Z, x0, y1).bounds_lonlat()
    _, _, e, n = Tile(Z, x1, y0).bounds_lonlat()
    return w, s, e, n


def make_layers(root: Path) -> None:
    layers = root / "layers"
    layers.mkdir()
    # two districts: tile column 13990 and columns 13991-13992, both in province "East"
    west = box(*_bounds(13990, 6259, 13990, 6262))
    east = box(*_bounds(13991, 6259, 13992, 6262))
    gpd.GeoDataFrame(
        {
            "DIST_ID": [10, 20],
            "Level1": ["East", "East"],
            "Level2": ["w", "e"],
            "Popden08": [300.0, 50.0],
        },
        geometry=[west, east],
        crs="EPSG:4326",
    ).to_crs("EPSG:32652").to_file(layers / "districts.gpkg")
    for year, value in NIGHTLIGHT.items():  # a uniform nightlight a year, nodata in the last column
        w, s, e, n = _bounds(13989, 6258, 13993, 6263)
        data = np.full((60, 50), value, np.float32)
        data[:, 40:] = -999.0
        with rasterio.open(
            layers / f"viirs_{year}.tif",
            "w",
            driver="GTiff",
            width=50,
            height=60,
            count=1,
            dtype="float32",
            crs="EPSG:4326",
            transform=from_bounds(w, s, e, n, 50, 60),
            nodata=-999.0,
        ) as dst:
            dst.write(data, 1)
    lonlat = {
        t: Tile(Z, t[1], t[0]).center_lonlat()
        for t in [(6259, 13990), (6262, 13992), (6261, 13991)]
    }
    gpd.GeoDataFrame(
        {"Name": ["harbour"]}, geometry=[Point(lonlat[(6259, 13990)])], crs="EPSG:4326"
    ).to_file(layers / "ports.shp")
    gpd.GeoDataFrame(
        {"Type": ["Gold"]}, geometry=[Point(lonlat[(6262, 13992)])], crs="EPSG:4326"
    ).to_file(layers / "mines.geojson")
    gpd.GeoDataFrame(
        {"Class": ["Industrial"]},
        geometry=[box(*Tile(Z, 13991, 6261).bounds_lonlat())],
        crs="EPSG:4326",
    ).to_file(layers / "zones.gpkg")


LAYERS = """\
    districts: {file: "{root}/layers/districts.gpkg", id: DIST_ID, province: Level1, name: Level2,
                population_density: Popden08}
    proxies: {nightlight: "{root}/layers/viirs_{year}.tif"}
    covariates:
      port: "{root}/layers/ports.shp"
      mine: {file: "{root}/layers/mines.geojson", type: Type}
      edz: {file: "{root}/layers/zones.gpkg", type: Class}
    regression:
      cluster: district_id
      regressors: [log_dist_capital_km, log_dist_port_km, near_mine_gold, edz_industrial]
"""


@pytest.fixture(scope="module")
def rlc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("rlc")
    sample = root / "sample"
    make_sample(sample)
    for year in (2016, 2017):
        for k, (y, x) in enumerate(EXTRA):
            save_image(
                sample / "tiles" / str(year) / f"{y}_{x}.png",
                tile_image(0.2 * k + 0.05 * (year - 2016), 31 * k + year),
            )
    # a blank tile in the first year too: with pandas 3 an all-None `problem` column in the first
    # `patches` write types the column INT32 and the next year's problem text fails to insert
    save_image(sample / "tiles" / "2016" / "6262_13991.png", np.zeros((16, 16, 3), np.uint8))
    make_layers(sample)
    text = textwrap.dedent(COUNTRIES).replace("TFC", "RLC")
    kept = [
        line
        for line in text.splitlines(keepends=True)
        if not line.strip().startswith(("districts:", "proxies:", "covariates:"))
    ]
    at = next(i for i, line in enumerate(kept) if line.strip().startswith("models:"))
    text = "".join(kept[:at]) + LAYERS + "".join(kept[at:])
    countries = root / "countries.yaml"
    countries.write_text(text.replace("{root}", str(sample)))
    registry = load_countries(countries)
    db = root / "warehouse.duckdb"
    defs = build_definitions(
        registry,
        data_root=str(root / "data"),
        countries_file=str(countries),
        warehouse_path=str(db),
    )
    instance = DagsterInstance.ephemeral()
    materialize_country(defs, "RLC", [2016, 2017], instance=instance, log=lambda _: None)
    return db, instance


def _q(db: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).df()


def test_districts_from_a_utm_geopackage(rlc):
    db, _ = rlc
    d = _q(
        db,
        "SELECT district_id, province, district_name, population, area_km2 "
        "FROM districts ORDER BY 1",
    )
    assert d["district_id"].tolist() == [10, 20] and set(d["province"]) == {"East"}
    assert np.allclose(d["population"], np.array([300.0, 50.0]) * d["area_km2"])


def test_nightlight_rasters_sampled_per_tile_and_year(rlc):
    db, _ = rlc
    p = _q(db, "SELECT year, tile_id, x, nightlight FROM proxies ORDER BY year, tile_id")
    assert set(p["year"]) == {2016, 2017}
    covered = p[p["x"] < 13992]
    for year, value in NIGHTLIGHT.items():
        assert np.allclose(covered.loc[covered["year"] == year, "nightlight"], value)
    # the raster's last tenth is nodata: column 13992 is partly nodata, its mean still the value
    last = p[p["x"] == 13992]
    assert np.allclose(
        last["nightlight"].dropna(), last["year"].map(NIGHTLIGHT)[last["nightlight"].notna()]
    )


def test_covariates_from_one_file_per_kind_after_patches(rlc):
    db, _ = rlc
    c = _q(db, "SELECT * FROM covariates ORDER BY tile_id").set_index("tile_id")
    tiles = _q(db, "SELECT DISTINCT tile_id FROM patches WHERE x >= 0")
    assert set(c.index) == set(tiles["tile_id"])
    assert c.loc[Tile(Z, 13990, 6259).tile_id, "dist_port_km"] == pytest.approx(0.0, abs=1e-6)
    assert c.loc[Tile(Z, 13992, 6262).tile_id, "near_mine_gold"]
    assert c.loc[Tile(Z, 13991, 6261).tile_id, "edz_industrial"]
    assert c["district_id"].notna().all() and set(c["district_id"]) == {10, 20}


def test_regression_on_the_real_layers_reports_what_it_left_out(rlc):
    db, instance = rlc
    table = _q(db, "SELECT model, term, n, n_clusters FROM development_regression")
    assert not table.empty and set(table["n_clusters"]) == {2}
    assert "log_dist_port_km" in set(table["term"]) and "log_dist_capital_km" not in set(
        table["term"]
    )
    meta = instance.get_latest_materialization_event(
        AssetKey("development_regression")
    ).asset_materialization.metadata
    assert meta["cluster"].value == "district_id"
    assert "log_dist_capital_km" in meta["regressors_without_layer"].value
    assert {"(1)", "(2)"} <= set(table["model"])  # siScore and nightlight outcomes


def test_guided_pog_from_the_raster_proxy(rlc):
    db, _ = rlc
    pogs = _q(db, "SELECT proxy FROM guided_pogs")
    assert "nightlight" in set(pogs["proxy"])
