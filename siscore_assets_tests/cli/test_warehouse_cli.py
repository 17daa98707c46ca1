"""``siscore warehouse refresh`` rebuilds the analysts' catalog from the table files."""

from __future__ import annotations

import duckdb
import pandas as pd
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.core.storage import warehouse

runner = CliRunner()


def test_refresh_rebuilds_a_lost_catalog(tiny_countries, monkeypatch, tmp_path):
    db = tmp_path / "data" / "warehouse.duckdb"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)
    warehouse.write(
        db,
        "siscore_grid",
        pd.DataFrame(
            {
                "country": ["SYN"] * 2,
                "year": [2016] * 2,
                "tile_id": ["14/1/1", "14/1/2"],
                "score": [0.25, 0.5],
            }
        ),
        {"country": "SYN", "year": 2016},
    )
    db.unlink()
    result = runner.invoke(app, ["warehouse", "refresh"])
    assert result.exit_code == 0, result.output
    assert "1 tables as views" in result.output and "-init" in result.output
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT sum(score) FROM siscore_grid").fetchone()[0] == 0.75
