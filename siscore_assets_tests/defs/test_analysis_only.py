"""An analysis-only country (``source: {kind: score_file}``): scores exported from an imagery
country, analysed with the same ground layers, give the same `district_siscore` and
`development_regression` rows; `siscore run` materialises what applies and records every
imagery-bound asset as "not configured"; a bad score file fails naming file and row, writing
nothing; `siscore countries` lists the country."""

from __future__ import annotations

import textwrap

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.transform
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize
from shapely.geometry import Point, box
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.cli.summary import summarize
from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.grid import block_bounds_3857, tiles_in_block
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.common.resources import Warehouse
from siscore_assets.defs.orchestration.runner import materialize_country
from siscore_assets_tests.conftest import select

pytestmark = pytest.mark.xdist_group("analysis_only")

X0, Y0, N = 13903, 6163, 8
YEARS = (2016, 2018)
COUNTRIES = """
default: IMG
countries:
  IMG:
    years: [2016, 2018]
    districts: {file: DIR/districts.gpkg, population: population}
    covariates: DIR/poi.gpkg
    proxies: {nightlight: "DIR/nl_{year}.tif"}
    regression: {cluster: tile_block}
    source: {kind: synthetic, seed: 5, x0: 13903, y0: 6163, nx: 8, ny: 8, tile_px: 32,
             granule_tiles: 8}
  ANA:
    years: [2016, 2018]
    districts: {file: DIR/districts.gpkg, population: population}
    covariates: DIR/poi.gpkg
    proxies: {nightlight: "DIR/nl_{year}.tif"}
    regression: {cluster: tile_block}
    indicators: {targets: [population], year: 2016, splits: 10}
    source: {kind: score_file, file: DIR/scores.csv}
"""


def _layers(folder) -> None:
    """16 district boxes of 2 x 2 tiles (with a population), points of interest and one
    nightlight raster per year (4 x 4 pixels a tile) over the 8 x 8 block."""
    left, bottom, right, top = block_bounds_3857(14, X0, Y0, N, N)
    step = (right - left) / 4
    boxes = [
        box(left + i * step, bottom + j * step, left + (i + 1) * step, bottom + (j + 1) * step)
        for j in range(4)
        for i in range(4)
    ]
    rng = np.random.default_rng(3)
    gpd.GeoDataFrame(
        {"name": [f"d{i}" for i in range(16)], "population": rng.integers(100, 10000, 16)},
        geometry=boxes,
        crs="EPSG:3857",
    ).to_file(folder / "districts.gpkg")
    mx, my = (left + right) / 2 + 150.0, (bottom + top) / 2 - 150.0
    gpd.GeoDataFrame(
        {"kind": ["capital", "provincial", "mine", "edz"],
         "edz_type": [None, None, None, "tourism"]},
        geometry=[Point(mx, my), Point(left + 500, top - 500), Point(right - 900, bottom + 900),
                  Point(left + 2000, bottom + 2000)],
        crs="EPSG:3857",
    ).to_file(folder / "poi.gpkg")  # fmt: skip
    transform = rasterio.transform.from_bounds(left, bottom, right, top, 4 * N, 4 * N)
    for year in YEARS:
        with rasterio.open(
            folder / f"nl_{year}.tif", "w", driver="GTiff", width=4 * N, height=4 * N, count=1,
            dtype="float64", crs="EPSG:3857", transform=transform,
        ) as dst:  # fmt: skip
            dst.write(rng.gamma(1.0, 2.0, (4 * N, 4 * N)), 1)


def _grid(year: int) -> pd.DataFrame:
    tiles = tiles_in_block(14, X0, Y0, N, N)
    rng = np.random.default_rng(year)
    score = np.round(rng.uniform(0, 1, len(tiles)), 6)
    score[rng.uniform(size=len(tiles)) < 0.2] = 0.0  # uninhabited tiles score 0
    return pd.DataFrame(
        {
            "country": "IMG",
            "year": year,
            "tile_id": [t.tile_id for t in tiles],
            "z": 14,
            "x": [t.x for t in tiles],
            "y": [t.y for t in tiles],
            "raw_score": score,
            "inhabited": score > 0,
            "score": score,
        }
    )


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    _layers(tmp_path)
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES).replace("DIR", str(tmp_path)))
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(countries))
    defs = build_definitions(
        load_countries(countries),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(db),
    )
    return tmp_path, db, defs


def _status(instance: DagsterInstance, asset: str, partition: str) -> str | None:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return None
    meta = records[0].asset_materialization.metadata
    return meta["status"].value if "status" in meta else "ok"


def _rows(db, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).df()


def test_scores_analysed_alone_reproduce_the_imagery_country(setup):
    tmp_path, db, defs = setup
    wh, instance = Warehouse(database=str(db)), DagsterInstance.ephemeral()
    for year in YEARS:  # IMG's Stages 1-3 as if run: its index and its scores
        keys = {"country": "IMG", "year": year}
        grid = _grid(year)
        wh.write(
            "patches", grid[["country", "year", "tile_id", "z", "x", "y"]].assign(status="ok"), keys
        )
        wh.write("siscore_grid", grid, keys)

    def run(names, key):
        materialize(list(defs.assets), selection=select(*names), partition_key=key,
                    resources=dict(defs.resources), instance=instance,
                    raise_on_error=True)  # fmt: skip

    run(["districts", "covariates"], "IMG")
    for year in YEARS:
        run(["proxies", "district_siscore"], country_year_key("IMG", year))
    run(["development_regression"], "IMG")
    exported = pd.concat([_grid(y) for y in YEARS])[["tile_id", "year", "score"]]
    exported.to_csv(tmp_path / "scores.csv", index=False)  # in the grid's order, as exported

    yearly = ["proxies", "siscore_grid", "district_siscore", "validation_grid"]
    run(["districts", "covariates"], "ANA")
    for year in YEARS:
        run(yearly, country_year_key("ANA", year))
    run(["development_regression", "district_indicators"], "ANA")

    def same(table: str, order: str) -> None:
        img = _rows(db, f"SELECT * FROM {table} WHERE country = 'IMG' ORDER BY {order}")
        ana = _rows(db, f"SELECT * FROM {table} WHERE country = 'ANA' ORDER BY {order}")
        assert len(img) and len(img) == len(ana), table
        pd.testing.assert_frame_equal(
            img.drop(columns="country"), ana.drop(columns="country"), check_exact=True
        )

    same("district_siscore", "year, district_id")
    same("development_regression", "model, term")
    same("proxies", "year, tile_id")
    splits = _rows(db, "SELECT * FROM indicator_splits WHERE country = 'ANA'")
    assert set(splits["method"]) >= {"multilevel", "sum_score", "nightlight_sum"}
    val = _rows(db, "SELECT * FROM validation_grid WHERE country = 'ANA' AND subset = 'all'")
    assert "siscore" in set(val["model"]) and set(val["proxy"]) == {"nightlight"}
    assert not set(val["model"]) & {"feature_ranker", "ordinal_regression"}  # no imagery


def test_siscore_run_materialises_what_applies_and_marks_the_rest_not_configured(setup):
    tmp_path, db, defs = setup
    Warehouse(database=str(db)).write(  # an imagery country beside it in the warehouse
        "patches", _grid(2016)[["country", "year", "tile_id", "z", "x", "y"]].assign(status="ok"),
        {"country": "IMG", "year": 2016},
    )  # fmt: skip
    exported = pd.concat([_grid(y) for y in YEARS])[["tile_id", "year", "score"]]
    exported.to_csv(tmp_path / "scores.csv", index=False)
    instance, lines = DagsterInstance.ephemeral(), []
    materialize_country(defs, "ANA", list(YEARS), instance=instance, log=lines.append)
    for asset in ("districts", "covariates", "development_regression", "district_indicators"):
        assert _status(instance, asset, "ANA") == "ok", asset
    for asset in ("clusters", "scorer", "ensemble_pog", "guided_pogs", "baseline_scores"):
        assert _status(instance, asset, "ANA") == "not configured", asset
    for year in YEARS:
        key = country_year_key("ANA", year)
        for asset in ("siscore_grid", "proxies", "district_siscore", "validation_grid"):
            assert _status(instance, asset, key) == "ok", (asset, year)
        for asset in ("validation_district", "siscore_raster", "siscore_change"):
            assert _status(instance, asset, key) == "ok", (asset, year)
        for asset in ("granules", "patches", "habitation", "feature_baseline"):
            assert _status(instance, asset, key) == "not configured", (asset, year)
    assert any("annotator ANA" in line and "not configured" in line for line in lines)
    assert _rows(db, "SELECT count(*) AS n FROM patches WHERE country = 'ANA'")["n"][0] == 0
    assert _rows(db, "SELECT count(*) AS n FROM siscore_grid WHERE country = 'ANA'")["n"][0] == 128

    # `siscore run`'s summary: the scored tiles, no clusters (IMG's patches beside it)
    text = summarize(str(db), tmp_path / "data", load_countries().get("ANA"))
    assert "tiles 2016: 64 (64 usable, " in text and "clusters, annotators: none" in text


def test_siscore_countries_lists_it_after_checking_the_file(setup):
    tmp_path, _, _ = setup
    (tmp_path / "scores.csv").write_text("tile_id,year,score\n14/13903/6163,2016,0.5\n")
    out = CliRunner().invoke(app, ["countries"])
    assert out.exit_code == 0, out.output
    assert "ANA: ANA; source score_file; years 2016, 2018" in out.output
    (tmp_path / "scores.csv").write_text("tile,year,score\n")
    out = CliRunner().invoke(app, ["countries"])
    assert out.exit_code == 2 and "ANA: ANA; source score_file; years 2016, 2018 [not ready" in (
        out.output
    )
    assert "scores.csv:1: missing column(s) tile_id (header: tile, year, score)" in out.output


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("14/99999999/6163,2016,0.5", "is off the grid"),
        ("14/13903/6163,2018,0.25", "duplicate tile-year"),
    ],
)
def test_a_bad_score_file_names_the_row_and_writes_nothing(setup, bad, problem):
    tmp_path, db, defs = setup
    rows = ["tile_id,year,score", "14/13903/6163,2016,0.1", "14/13904/6163,2016,0.2"]
    rows += ["14/13903/6163,2018,0.3"]
    path = tmp_path / "scores.csv"
    path.write_text("\n".join(rows) + "\n")
    instance = DagsterInstance.ephemeral()

    def run(ok: bool):
        return materialize(list(defs.assets), selection=select("siscore_grid"),
                           partition_key=country_year_key("ANA", 2016),
                           resources=dict(defs.resources), instance=instance,
                           raise_on_error=ok)  # fmt: skip

    run(True)
    path.write_text("\n".join([*rows, bad]) + "\n")
    result = run(False)
    assert not result.success
    err = "".join(
        e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure
    )
    assert f"{path}:5: " in err and problem in err
    kept = _rows(db, "SELECT * FROM siscore_grid WHERE country = 'ANA' ORDER BY tile_id")
    assert kept["score"].tolist() == [0.1, 0.2]  # the earlier rows stay, nothing new written
