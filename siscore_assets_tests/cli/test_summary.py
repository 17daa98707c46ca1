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
