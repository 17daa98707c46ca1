"""`siscore summary` against a warehouse we fill: only the countries file's years are shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.maps.rasters import RASTER_FILE_COLUMNS, RASTER_FILE_TABLES
from siscore_assets.core.storage import warehouse as wh

runner = CliRunner()


def _grid(year: int, n: int) -> pd.DataFrame:
    xs = 13903 + np.arange(n)
    return pd.DataFrame(
        {
            "country": "SYN",
            "year": year,
            "tile_id": [Tile(14, int(x), 6163).tile_id for x in xs],
            "z": 14,
            "x": xs,
            "y": 6163,
            "score": np.linspace(0.0, 1.0, n),
            "inhabited": np.arange(n) % 2 == 0,
        }
    )


@pytest.fixture
def fill(tiny_countries, monkeypatch, tmp_path):
    """``fill(year, tiles)``: SYN's scored grid of that year and its rasters (the year's siScore
    and the change from the year before) in the warehouse."""
    db = tmp_path / "data" / "warehouse.duckdb"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)

    def go(year: int, n: int) -> None:
        wh.write(db, "siscore_grid", _grid(year, n), {"country": "SYN", "year": year})
        files = pd.DataFrame(
            [
                {"country": "SYN", "year": year, "kind": k, "format": "geotiff", "path": p}
                for k, p in (
                    ("siscore", f"siscore_{year}.tif"),
                    (f"change_{year - 1}_{year}", f"change_{year - 1}_{year}.tif"),
                )
            ]
        )
        wh.write(db, "siscore_raster_files", files, {"country": "SYN", "year": year})
        wh.union_view(db, "raster_files", RASTER_FILE_TABLES, RASTER_FILE_COLUMNS)

    return go


def test_summary_shows_only_configured_years_and_names_the_ones_left_out(fill):
    """SYN is 2016-2017 now; 2015 is still in the warehouse from an earlier configuration: its
    tiles and rasters (its change to 2016 too) are not listed, and one line says it was left out
    and why."""
    for year, n in ((2015, 3), (2016, 4), (2017, 5)):
        fill(year, n)
    result = runner.invoke(app, ["summary", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("tiles ")] == [
        "tiles 2016: 4 (4 usable, 2 inhabited)",
        "tiles 2017: 5 (5 usable, 3 inhabited)",
    ]
    assert "rasters: siscore_2016.tif, change_2016_2017.tif, siscore_2017.tif" in lines
    left_out = [line for line in lines if "2015" in line]
    assert left_out == ["note: leaving out 2015: in the warehouse, no longer configured for SYN"], (
        result.output
    )


def test_summary_without_stale_years_says_nothing_of_them(fill):
    fill(2016, 4)
    result = runner.invoke(app, ["summary", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    assert "tiles 2016: 4 (4 usable, 2 inhabited)" in result.output
    assert "leaving out" not in result.output


def test_a_country_with_nothing_in_the_warehouse_is_exit_2(fill):
    """Not "clusters, annotators: none (scores from a score file)" and exit 0."""
    fill(2016, 4)
    result = runner.invoke(app, ["summary", "--country", "TWO"])
    assert result.exit_code == 2
    assert "has no siScore for TWO: run `siscore run --country TWO` first" in result.output
    assert "score file" not in result.output


def test_a_year_without_habitation_rows_says_inhabited_unknown(fill, tmp_path):
    """A partial run: 2017's patches are in, its habitation step has not run."""
    db = tmp_path / "data" / "warehouse.duckdb"
    for year, n in ((2016, 4), (2017, 5)):
        fill(year, n)
        grid = _grid(year, n)
        wh.write(db, "patches", grid.assign(status="ok"), {"country": "SYN", "year": year})
    wh.write(db, "habitation", _grid(2016, 4), {"country": "SYN", "year": 2016})
    syn = {"country": "SYN"}
    wh.write(db, "clusters", pd.DataFrame({**syn, "cluster_group": ["urban"]}), syn)
    wh.write(db, "annotator_pogs", pd.DataFrame({**syn, "annotator": ["a"]}), syn)
    wh.write(db, "ensemble_pog", pd.DataFrame({**syn, "cluster_id": [0], "tier": [1]}), syn)
    weights = pd.DataFrame({**syn, "annotator": ["a"], "weight": [1.0]})
    wh.write(db, "annotator_weights", weights, syn)
    result = runner.invoke(app, ["summary", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    assert "tiles 2016: 4 (4 usable, 2 inhabited)" in result.output
    assert "tiles 2017: 5 (5 usable, inhabited unknown)" in result.output


def test_rasters_of_a_moved_data_folder_are_shown_where_they_are_now(fill, tmp_path):
    """raster_files keeps the absolute paths of the folder the data was made in."""
    db = tmp_path / "data" / "warehouse.duckdb"
    fill(2016, 4)
    made = tmp_path / "made_here" / "SYN" / "rasters"
    files = pd.DataFrame(
        [
            {"country": "SYN", "year": 2016, "kind": k, "format": "geotiff", "path": str(p)}
            for k, p in (("siscore", made / "siscore_2016.tif"), ("tiers", made / "gone_2016.tif"))
        ]
    )
    wh.write(db, "siscore_raster_files", files, {"country": "SYN", "year": 2016})
    now = tmp_path / "data" / "SYN" / "rasters"
    now.mkdir(parents=True)
    (now / "siscore_2016.tif").write_bytes(b"")
    result = runner.invoke(app, ["summary", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("rasters: "))
    assert line == f"rasters: {now / 'siscore_2016.tif'}, {made / 'gone_2016.tif'}"


def test_a_raster_two_tables_name_is_listed_once(fill, tmp_path):
    """`siscore change --from <first> --to Y` writes the file `siscore_change` filed as its base
    pair: one file, one entry."""
    from siscore_assets.core.maps.rasters import RASTER_FILE_COLUMNS, RASTER_FILE_TABLES

    db = tmp_path / "data" / "warehouse.duckdb"
    fill(2016, 4)
    fill(2017, 4)
    tif = str(tmp_path / "data" / "SYN" / "rasters" / "change_2016_2017.tif")
    for table, kind in (("change_raster_files", "change_base"), ("adhoc_change_files", "adhoc")):
        row = {"country": "SYN", "year": 2017, "kind": kind, "format": "geotiff", "path": tif}
        keys = {"country": "SYN", "year": 2017}
        wh.write(
            db, table, pd.DataFrame([row]), keys | ({"kind": kind} if "adhoc" in table else {})
        )
    wh.union_view(db, "raster_files", RASTER_FILE_TABLES, RASTER_FILE_COLUMNS)
    result = runner.invoke(app, ["summary", "--country", "SYN"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("rasters: "))
    assert line.count(tif) == 1, line
