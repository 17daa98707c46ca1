"""`siscore export --format gpkg` and `siscore change --from --to` against a warehouse we fill."""

from __future__ import annotations

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import rasterio
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.maps.rasters import change_between, raster_matches_grid, validate_cog
from siscore_assets.core.storage import warehouse as wh

runner = CliRunner()
Z, X0, Y0 = 14, 13903, 6163


def _grid(year: int, seed: int, n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    df = pd.DataFrame(
        {"country": "SYN", "year": year, "z": Z, "x": X0 + xs.ravel(), "y": Y0 + ys.ravel()}
    )
    df = df[rng.random(len(df)) > 0.15].reset_index(drop=True)  # some tiles unscored this year
    df["tile_id"] = [Tile(Z, x, y).tile_id for x, y in zip(df["x"], df["y"])]
    df["inhabited"] = rng.random(len(df)) > 0.25
    df["raw_score"] = rng.random(len(df))
    df["score"] = np.where(df["inhabited"], df["raw_score"], 0.0)
    return df


@pytest.fixture
def filled(tiny_countries, monkeypatch, tmp_path):
    db = tmp_path / "data" / "warehouse.duckdb"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)
    for year, seed in ((2016, 1), (2017, 2)):
        wh.write(db, "siscore_grid", _grid(year, seed), {"country": "SYN", "year": year})
    return db


def _q(db, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).df()


def test_export_gpkg_reads_back_with_tile_bounds_and_warehouse_values(filled, tmp_path):
    out = tmp_path / "out" / "syn.gpkg"
    out.parent.mkdir()  # --out's folder must exist (a typo is an error, not a new folder)
    result = runner.invoke(
        app, ["export", "--country", "SYN", "--format", "gpkg", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "score_2016" in result.output and "change_2016_2017" in result.output
    assert [name for name, _ in pyogrio.list_layers(out)] == ["siscore_grid"]
    layer = gpd.read_file(out, layer="siscore_grid", engine="pyogrio")
    assert layer.crs.to_epsg() == 3857
    grid = _q(filled, "SELECT * FROM siscore_grid WHERE country = 'SYN'")
    assert len(layer) == grid["tile_id"].nunique() and layer["tile_id"].is_unique
    for row in layer.itertuples():
        left, bottom, right, top = Tile(int(row.z), int(row.x), int(row.y)).bounds_3857()
        np.testing.assert_allclose(
            row.geometry.bounds, (left, bottom, right, top), rtol=0, atol=1e-6
        )
        assert row.geometry.area == pytest.approx((right - left) * (top - bottom))
    merged = layer.merge(
        grid.pivot(index="tile_id", columns="year", values="score").reset_index(), on="tile_id"
    )
    for y in (2016, 2017):
        a, b = merged[f"score_{y}"].to_numpy(), merged[y].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(
            a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=0
        )
    both = merged[merged[2016].notna() & merged[2017].notna()]
    np.testing.assert_allclose(
        both["change_2016_2017"], both[2017] - both[2016], rtol=0, atol=1e-15
    )
    assert merged.loc[merged[2016].isna() | merged[2017].isna(), "change_2016_2017"].isna().all()
    assert set(layer["inhabited_2016"].dropna().unique()) <= {True, False}


def test_export_default_path_and_bad_inputs_write_nothing(filled, tmp_path):
    data = tmp_path / "data"
    result = runner.invoke(app, ["export", "--country", "XXX", "--format", "gpkg"])
    assert result.exit_code == 2 and "unknown country 'XXX'" in result.output
    result = runner.invoke(
        app, ["export", "--country", "TWO"]
    )  # configured, nothing in the warehouse
    assert result.exit_code == 2 and "no siScore for TWO" in result.output
    result = runner.invoke(app, ["export", "--country", "SYN", "--format", "shp"])
    assert result.exit_code == 2 and "unsupported format" in result.output
    assert not (data / "SYN" / "exports").exists() and not (data / "TWO").exists()
    result = runner.invoke(app, ["export", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    assert (data / "SYN" / "exports" / "siscore_SYN.gpkg").is_file()


def test_export_with_no_warehouse_at_all(tiny_countries, monkeypatch, tmp_path):
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    result = runner.invoke(app, ["export", "--country", "SYN", "--format", "gpkg"])
    assert result.exit_code == 2 and "has no siScore for SYN" in result.output
    assert not (tmp_path / "data").exists()


def test_change_any_two_years(filled, tmp_path):
    result = runner.invoke(app, ["change", "--country", "SYN", "--from", "2016", "--to", "2017"])
    assert result.exit_code == 0, result.output
    tif = tmp_path / "data" / "SYN" / "rasters" / "change_2016_2017.tif"
    assert validate_cog(tif)[0] and tif.with_suffix(".png").is_file()
    grid = _q(filled, "SELECT * FROM siscore_grid")
    a, b = grid[grid["year"] == 2016], grid[grid["year"] == 2017]
    both = a.merge(b, on=["z", "x", "y"], suffixes=("_a", "_b"))
    both["delta"] = both["score_b"] - both["score_a"]
    both["keep"] = both["inhabited_a"] | both["inhabited_b"]
    assert raster_matches_grid(tif, both, "delta", "keep")["mismatched"] == 0
    with rasterio.open(tif) as src:
        assert src.crs.to_epsg() == 3857
    files = _q(filled, "SELECT * FROM raster_files")
    assert set(files["kind"]) == {"change_2016_2017"} and len(files) == 2
    assert "in people" not in result.output  # no census_link: the score's change only

    # with a census link, the same change counted in people (by hand: k expm1(beta s) / beta)
    link = {"year": 2016, "beta": 3.0, "people_per_unit": 200.0, "districts": 6}
    link["districts_partial"] = 0
    row = pd.DataFrame([{"country": "SYN", **link, "log_rmse": 0.1, "log_rmse_linear": 0.3}])
    wh.write(filled, "census_link", row, {"country": "SYN"})
    result = runner.invoke(app, ["change", "--country", "SYN", "--from", "2016", "--to", "2017"])
    assert result.exit_code == 0, result.output
    # by hand: people only where that year's verdict is inhabited; gains and losses among the
    # tiles the score's change flags, by the score's direction
    ch = change_between(a, b).merge(both[["z", "x", "y", "inhabited_a", "inhabited_b"]])
    ch = ch[ch["inhabited_any"]]
    inh_a, inh_b = ch["inhabited_a"].astype(bool), ch["inhabited_b"].astype(bool)
    people = (
        200.0 * np.expm1(3.0 * ch["score_cur"].where(inh_b, 0.0)) / 3.0
        - 200.0 * np.expm1(3.0 * ch["score_prev"].where(inh_a, 0.0)) / 3.0
    )
    sig = ch["significant"].astype(bool)
    gains, losses = people[sig & (ch["delta"] > 0)].sum(), people[sig & (ch["delta"] < 0)].sum()
    assert sig.any()
    line = (
        f"in people (census_link on 2016's scores): net {people.sum():+,.0f}; "
        f"significant gains {gains:+,.0f}, significant losses {losses:+,.0f}"
    )
    assert line in result.output, result.output


def test_change_bad_years_exit_2(filled):
    result = runner.invoke(app, ["change", "--country", "SYN", "--from", "2015", "--to", "2017"])
    assert result.exit_code == 2 and "no year 2015" in result.output
    result = runner.invoke(app, ["change", "--country", "SYN", "--from", "2017", "--to", "2017"])
    assert result.exit_code == 2 and "two different years" in result.output


def test_change_and_export_refuse_years_of_two_scorers(filled, tmp_path):
    for year, seed, made_by in ((2016, 1, "0123456789abcdef"), (2017, 2, "fedcba9876543210")):
        grid = _grid(year, seed).assign(scorer=made_by)
        wh.write(filled, "siscore_grid", grid, {"country": "SYN", "year": year})
    out = tmp_path / "syn.gpkg"
    for args in (
        ["change", "--country", "SYN", "--from", "2016", "--to", "2017"],
        ["export", "--country", "SYN", "--format", "gpkg", "--out", str(out)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and "scored by different scorers" in result.output
        assert "materialise siscore_grid again for 2016, 2017" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output  # one line
    assert not out.exists()


def test_export_geoparquet_reads_back_in_geopandas_and_duckdb_spatial(filled, tmp_path):
    """GeoParquet beside the GeoPackage: the same features, EPSG:3857, full-precision scores,
    and DuckDB spatial (loaded offline from the duckdb-ext-spatial package) reads the polygons."""
    from siscore_assets.core.storage import spatial

    out = tmp_path / "out" / "syn.parquet"
    out.parent.mkdir()
    result = runner.invoke(
        app, ["export", "--country", "SYN", "--format", "geoparquet", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    layer = gpd.read_parquet(out)
    gpkg = tmp_path / "out" / "syn.gpkg"
    assert runner.invoke(app, ["export", "--country", "SYN", "--out", str(gpkg)]).exit_code == 0
    ref = gpd.read_file(gpkg, layer="siscore_grid", engine="pyogrio")
    assert layer.crs.to_epsg() == 3857 and len(layer) == len(ref)
    assert np.array_equal(
        layer["score_2016"].to_numpy(), ref["score_2016"].to_numpy(), equal_nan=True
    )
    grid = _q(filled, "SELECT tile_id, score FROM siscore_grid WHERE year = 2016").set_index(
        "tile_id"
    )["score"]
    assert np.array_equal(
        layer.set_index("tile_id")["score_2016"].reindex(grid.index).to_numpy(), grid.to_numpy()
    )
    with duckdb.connect() as conn:
        spatial.load(conn)
        area = conn.execute(f"SELECT sum(ST_Area(geometry)) FROM read_parquet('{out}')").fetchone()[
            0
        ]
    assert area == pytest.approx(float(layer.geometry.area.sum()))


def test_export_leaves_out_a_year_no_longer_configured(filled, tmp_path):
    """2015 was scored under an earlier configuration (SYN is 2016-2017 now): its scores and
    its change to 2017 would not compare, so the export names it and leaves it out."""
    wh.write(filled, "siscore_grid", _grid(2015, 9), {"country": "SYN", "year": 2015})
    out = tmp_path / "syn.gpkg"
    result = runner.invoke(app, ["export", "--country", "SYN", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "leaving out 2015" in result.output
    layer = gpd.read_file(out, layer="siscore_grid", engine="pyogrio")
    assert not [c for c in layer.columns if "2015" in c]
    assert "change_2016_2017" in layer.columns


def _whole_layer(grid: pd.DataFrame, path, fmt: str) -> None:
    """The layer built whole in memory by pandas (the export before it streamed): the reference
    the streamed, DuckDB-pivoted layer must equal."""
    from siscore_assets.core.maps.export import LAYER, change_pairs, grid_polygons

    years = sorted(int(y) for y in grid["year"].unique())
    wide = grid[["tile_id", "z", "x", "y"]].drop_duplicates("tile_id").set_index("tile_id")
    scores = grid.pivot(index="tile_id", columns="year", values="score")
    hab = grid.pivot(index="tile_id", columns="year", values="inhabited")
    for y in years:
        wide[f"score_{y}"] = scores[y].astype(float)
    for y in years:
        wide[f"inhabited_{y}"] = hab[y].astype("boolean")
    for a, b in change_pairs(years):
        wide[f"change_{a}_{b}"] = wide[f"score_{b}"] - wide[f"score_{a}"]
    wide = wide.reset_index().sort_values(["y", "x"], kind="stable").reset_index(drop=True)
    layer = grid_polygons(wide)
    layer.insert(0, "country", "SYN")
    if fmt == "gpkg":
        layer.to_file(path, layer=LAYER, driver="GPKG", engine="pyogrio")
    else:
        layer.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt, suffix", [("gpkg", ".gpkg"), ("geoparquet", ".parquet")])
def test_export_streamed_in_batches_writes_the_layer_of_the_whole_grid(
    filled, tmp_path, monkeypatch, fmt, suffix
):
    """Five tiles at a time (a batch per grid row of six), the file holds the same rows, columns
    and types as the layer made of the whole grid in memory (:func:`_whole_layer`, what the
    export wrote before it streamed), GeoParquet's header (bbox, CRS, pandas types)
    included."""
    from siscore_assets.core.maps import export as export_lib

    monkeypatch.setattr(export_lib, "BATCH_ROWS", 5)
    out = tmp_path / f"syn{suffix}"
    result = runner.invoke(app, ["export", "--country", "SYN", "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "36 tiles" in result.output
    ref = tmp_path / f"ref{suffix}"
    grid = _q(filled, "SELECT * FROM siscore_grid WHERE country = 'SYN' ORDER BY year, y, x")
    _whole_layer(grid, ref, fmt)
    if fmt == "gpkg":
        got, want = (gpd.read_file(p, layer="siscore_grid", engine="pyogrio") for p in (out, ref))
    else:
        got, want = gpd.read_parquet(out), gpd.read_parquet(ref)
        assert pq.read_schema(out).equals(pq.read_schema(ref), check_metadata=True)
        assert pq.ParquetFile(out).num_row_groups == 6  # a batch per grid row (6 tiles)
    assert len(got) == 36
    pd.testing.assert_frame_equal(got, want)


def test_row_bands_hold_whole_grid_rows_up_to_the_batch():
    from siscore_assets.core.maps.export import row_bands

    rows = [(10, 4), (11, 4), (12, 9), (13, 1), (15, 2), (16, 20)]
    assert row_bands(rows, 8) == [(10, 11), (12, 12), (13, 15), (16, 16)]
    assert row_bands(rows, 100) == [(10, 16)]
    assert row_bands([], 8) == []


def _corrupt_column(path, column: str) -> None:
    """Overwrite every page of ``column`` in the Parquet file at ``path``: reading it fails."""
    meta = pq.ParquetFile(path).metadata
    i = meta.schema.names.index(column)
    with open(path, "r+b") as fh:
        for g in range(meta.num_row_groups):
            chunk = meta.row_group(g).column(i)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            fh.seek(start)
            fh.write(b"\xff" * chunk.total_compressed_size)


def test_export_reads_only_the_columns_it_writes(tiny_countries, monkeypatch, tmp_path):
    """Grid rows may carry more than the layer needs (here 20 KB of ``features`` a row, whose
    pages are then corrupted on disk): the export reads only the columns it writes, so it never
    touches them (it used to read every column of every year into memory)."""
    db = tmp_path / "data" / "warehouse.duckdb"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)
    rng = np.random.default_rng(0)
    for year, seed in ((2016, 1), (2017, 2)):
        grid = _grid(year, seed)
        grid["features"] = [rng.bytes(10_000).hex() for _ in range(len(grid))]
        wh.write(db, "siscore_grid", grid, {"country": "SYN", "year": year})
    files = sorted((tmp_path / "data" / "warehouse" / "siscore_grid").glob("*.parquet"))
    assert len(files) == 2
    for f in files:
        _corrupt_column(f, "features")
        with pytest.raises(duckdb.Error):  # the column cannot be read now
            duckdb.sql(f"SELECT features FROM read_parquet('{f}')").fetchall()
    out = tmp_path / "syn.gpkg"
    result = runner.invoke(app, ["export", "--country", "SYN", "--out", str(out)])
    assert result.exit_code == 0, result.output
    layer = gpd.read_file(out, layer="siscore_grid", engine="pyogrio")
    assert "features" not in layer.columns and "change_2016_2017" in layer.columns
    assert len(layer) == _q(db, "SELECT count(DISTINCT tile_id) AS n FROM siscore_grid")["n"][0]
