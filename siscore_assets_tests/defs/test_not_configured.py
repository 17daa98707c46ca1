"""A country whose districts, proxies and covariates are `none` (like the real North Korea sample):
the ingest assets for those layers and every analysis asset record "not configured" and succeed
without rows; an imported proxy still gets validated."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.core.analysis import imported as imports_lib
from siscore_assets.core.imagery.grid import tiles_in_block
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.common.resources import Warehouse
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

pytestmark = pytest.mark.xdist_group("not_configured")

BARE = """
default: BARE
countries:
  BARE:
    name: no ground layers
    years: [2016]
    districts: none
    proxies: none
    covariates: none
    source: {kind: synthetic, seed: 5, x0: 13903, y0: 6163, nx: 4, ny: 4, tile_px: 64,
             granule_tiles: 4}
"""


def _status(result, name: str) -> str:
    mats = result.asset_materializations_for_node(name)
    assert mats, name
    return mats[-1].metadata["status"].value


def _rows(db, table: str) -> int:
    with duckdb.connect(str(db), read_only=True) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()[0]
        return (
            conn.execute(f"SELECT count(*) FROM {table} WHERE country = 'BARE'").fetchone()[0]
            if exists
            else 0
        )


def test_layers_set_to_none_are_recorded_not_failed(tmp_path):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(BARE))
    defs, db = definitions_for(countries, tmp_path)
    tiles = tiles_in_block(14, 13903, 6163, 4, 4)
    grid = pd.DataFrame(
        {
            "country": "BARE",
            "year": 2016,
            "tile_id": [t.tile_id for t in tiles],
            "z": 14,
            "x": [t.x for t in tiles],
            "y": [t.y for t in tiles],
            "raw_score": np.linspace(0, 1, 16),
            "inhabited": True,
            "score": np.linspace(0, 1, 16),
        }
    )
    Warehouse(database=str(db)).write("siscore_grid", grid, {"country": "BARE", "year": 2016})
    instance = DagsterInstance.ephemeral()
    assets, resources = list(defs.assets), dict(defs.resources)

    def run(names, key):
        return materialize(
            assets,
            selection=select(*names),
            partition_key=key,
            resources=resources,
            instance=instance,
            raise_on_error=True,
        )

    country = ["districts", "covariates", "baseline_scores", "development_regression"]
    yearly = ["proxies", "district_siscore", "validation_grid", "validation_district"]
    r_country = run(country, "BARE")
    r_year = run(yearly, country_year_key("BARE", 2016))
    for name in country:
        assert _status(r_country, name) == "not configured", name
    for name in yearly:
        assert _status(r_year, name) == "not configured", name
    for table in (
        "districts",
        "covariates",
        "proxies",
        "district_siscore",
        "validation_grid",
        "validation_district",
        "development_regression",
        "baseline_scores",
    ):
        assert _rows(db, table) == 0, table

    # an imported proxy is enough for grid-level validation
    csv = tmp_path / "est.csv"
    csv.write_text(
        "tile_id,value\n" + "".join(f"{t.tile_id},{i}\n" for i, t in enumerate(tiles[:12]))
    )
    folder = imports_lib.imports_dir(tmp_path / "data", "BARE", "proxies")
    imports_lib.store(
        csv,
        imports_lib.ImportSpec(
            name="establishments",
            kind="proxies",
            format="csv",
            file="establishments.csv",
            original=str(csv),
        ),
        folder,
    )
    run(["imported_proxies"], "BARE")
    result = run(["validation_grid"], country_year_key("BARE", 2016))
    assert _status(result, "validation_grid") == "ok"
    with duckdb.connect(str(db), read_only=True) as conn:
        val = conn.execute(
            "SELECT * FROM validation_grid WHERE country = 'BARE' AND subset = 'all'"
        ).df()
    row = val[(val["model"] == "siscore") & (val["proxy"] == "establishments")].iloc[0]
    assert (
        row["n"] == 12
        and row["dropped_no_proxy"] == 4
        and row["spearman_rho"] == pytest.approx(1.0)
    )


def test_configured_layer_files_in_any_crs(tmp_path):
    """Districts from a GeoJSON in EPSG:4326 (no id column) and points of interest from a
    GeoPackage in UTM: reprojected, ids assigned, covariates and district aggregates derived."""
    import geopandas as gpd
    from shapely.geometry import Point, box

    from siscore_assets.core.imagery.grid import block_bounds_3857

    left, bottom, right, top = block_bounds_3857(14, 13903, 6163, 4, 4)
    mid = (left + right) / 2 + 100.0
    d = gpd.GeoDataFrame(
        {"name": ["west", "east"], "population": [1000, 3000]},
        geometry=[box(left, bottom, mid, top), box(mid, bottom, right, top)],
        crs="EPSG:3857",
    )
    d.set_geometry(d.geometry.segmentize(50.0)).to_crs("EPSG:4326").to_file(tmp_path / "d.geojson")
    c = ((left + right) / 2, (bottom + top) / 2)
    poi = gpd.GeoDataFrame(
        {"kind": ["capital", "mine", "edz"], "edz_type": [None, None, "tourism"]},
        geometry=[Point(c), Point(left + 10, top - 10), Point(c)],
        crs="EPSG:3857",
    )
    poi.to_crs("EPSG:32652").to_file(tmp_path / "poi.gpkg")
    countries = tmp_path / "countries.yaml"
    countries.write_text(
        textwrap.dedent(BARE)
        .replace("districts: none", f"districts: {tmp_path / 'd.geojson'}")
        .replace("covariates: none", f"covariates: {tmp_path / 'poi.gpkg'}")
    )
    defs, db = definitions_for(countries, tmp_path)
    tiles = tiles_in_block(14, 13903, 6163, 4, 4)
    base = pd.DataFrame(
        {
            "country": "BARE",
            "year": 2016,
            "tile_id": [t.tile_id for t in tiles],
            "z": 14,
            "x": [t.x for t in tiles],
            "y": [t.y for t in tiles],
        }
    )
    wh = Warehouse(database=str(db))
    wh.write("patches", base.assign(status="ok"), {"country": "BARE", "year": 2016})
    wh.write(
        "siscore_grid",
        base.assign(raw_score=0.5, inhabited=True, score=np.arange(16) / 15),
        {"country": "BARE", "year": 2016},
    )
    instance = DagsterInstance.ephemeral()
    for names, key in (
        (["districts", "covariates"], "BARE"),
        (["district_siscore"], country_year_key("BARE", 2016)),
    ):
        materialize(
            list(defs.assets),
            selection=select(*names),
            partition_key=key,
            resources=dict(defs.resources),
            instance=instance,
            raise_on_error=True,
        )
    with duckdb.connect(str(db), read_only=True) as conn:
        dist = conn.execute(
            "SELECT district_id, name, area_km2 FROM districts ORDER BY district_id"
        ).df()
        cov = conn.execute("SELECT * FROM covariates").df()
        agg = conn.execute("SELECT * FROM district_siscore ORDER BY district_id").df()
    assert list(dist["district_id"]) == [0, 1] and list(dist["name"]) == ["west", "east"]
    assert (dist["area_km2"] > 0).all()
    assert len(cov) == 16 and sorted(cov["district_id"].value_counts()) == [8, 8]
    assert cov["near_mine"].sum() == 4 and cov["edz_tourism"].sum() >= 1
    assert agg["n_tiles"].sum() == 16
    assert agg["area_km2"].to_numpy() == pytest.approx(dist["area_km2"].to_numpy(), rel=1e-3)


def test_a_one_year_country_records_its_regression_not_configured(tiny_countries, tmp_path):
    """TWO has one configured year: the regression has no change to regress, so both of its
    tables record 'not configured' (the run goes on) instead of failing the wave."""
    defs, db = definitions_for(tiny_countries, tmp_path)
    result = materialize(
        list(defs.assets),
        selection=select("development_regression"),
        partition_key="TWO",
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    for name in ("development_regression", "regression_panel"):
        mats = result.asset_materializations_for_node("development_regression")
        meta = next(m.metadata for m in mats if m.asset_key.to_user_string() == name)
        assert meta["status"].value == "not configured", name
        assert "needs two configured years" in meta["note"].value, name
