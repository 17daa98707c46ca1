"""`siscore scores import` / `siscore proxies import`: bad files exit 2 and write nothing; good
files are stored under the data root and loaded into DuckDB by the import assets."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from siscore_assets.cli import app

runner = CliRunner()
X0, Y0 = 13903, 6163


@pytest.fixture
def env(tiny_countries, monkeypatch, tmp_path):
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("body", "args", "message"),
    [
        (
            "tile_id,year,score\n6163_13903,2016,0.5\n6163_13903,2016,0.7\n",
            [],
            "s.csv:3: column tile_id: duplicate tile 14/13903/6163 for year 2016 (first on line 2)",
        ),
        (
            "tile_id,year,score\n6163_13903,2016,abc\n",
            [],
            "s.csv:2: column score: not a finite number: 'abc'",
        ),
        (
            "tile_id,year,score\n6163-13903,2016,1\n",
            [],
            "s.csv:2: column tile_id: not a tile id: '6163-13903'",
        ),
        (
            "tile_id,year,score\n6163_13903,2019,1\n",
            [],
            "s.csv:2: column year: 2019 is not a configured year (2016, 2017)",
        ),
        ("tile_id,score\n6163_13903,1\n", ["--country", "XXX"], "unknown country 'XXX'"),
        ("tile_id,score\n6163_13903,1\n", ["--name", "siscore"], "reserved"),
    ],
)
def test_bad_import_exits_2_and_writes_nothing(env, body, args, message):
    f = env / "s.csv"
    f.write_text(body)
    opts = {"--country": "SYN", "--name": "other"}
    opts.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(
        app, ["scores", "import", str(f), *[x for kv in opts.items() for x in kv]]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (env / "data").exists()


def test_good_import_is_stored_and_loaded(env):
    f = env / "rwi.csv"
    f.write_text(
        f"tile_id,year,score\n{Y0}_{X0},2016,0.5\n{Y0}_{X0 + 1},2017,0.25\n99_99,2017,0.1\n"
    )
    result = runner.invoke(app, ["scores", "import", str(f), "--country", "SYN", "--name", "rwi"])
    assert result.exit_code == 0, result.output
    stored = env / "data" / "SYN" / "imports" / "scores"
    assert (stored / "rwi.csv").read_text() == f.read_text() and (stored / "rwi.json").is_file()
    with duckdb.connect(str(env / "data" / "warehouse.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "SELECT name, year, tile_id, score FROM imported_scores ORDER BY source_line"
        ).fetchall()
        files = conn.execute(
            "SELECT name, rows, years FROM import_files WHERE kind = 'scores'"
        ).fetchall()
    assert rows == [
        ("rwi", 2016, f"14/{X0}/{Y0}", 0.5),
        ("rwi", 2017, f"14/{X0 + 1}/{Y0}", 0.25),
        ("rwi", 2017, "14/99/99", 0.1),
    ]  # off-grid ids are kept; validation counts them
    assert files == [("rwi", 3, "2016,2017")]
    again = runner.invoke(
        app, ["scores", "import", str(f), "--country", "SYN", "--name", "rwi", "--no-materialize"]
    )
    assert again.exit_code == 2 and "--replace" in again.output
    proxy = env / "est.csv"
    proxy.write_text(f"tile_id,value\n14/{X0}/{Y0},3\n")
    result = runner.invoke(
        app,
        [
            "proxies",
            "import",
            str(proxy),
            "--country",
            "SYN",
            "--name",
            "establishments",
            "--district",
            "density",
        ],
    )
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(env / "data" / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT name, year, value FROM imported_proxies").fetchall() == [
            ("establishments", None, 3.0)
        ]


def test_raster_import_is_stored_with_its_year_and_sampled(env):
    import numpy as np
    import pandas as pd
    import rasterio
    from rasterio.transform import from_bounds

    from siscore_assets.core.analysis import imported as imports
    from siscore_assets.core.imagery.grid import Tile

    w, _, _, n = Tile(14, X0, Y0).bounds_lonlat()
    _, s, e, _ = Tile(14, X0 + 1, Y0 + 1).bounds_lonlat()
    tif = env / "rwi.tif"
    with rasterio.open(
        tif,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_bounds(w, s, e, n, 2, 2),
    ) as dst:
        dst.write(np.array([[1, 2], [3, 4]], dtype="float32"), 1)
    bad_year = runner.invoke(
        app, ["scores", "import", str(tif), "--country", "SYN", "--name", "rwi", "--year", "2030"]
    )
    assert bad_year.exit_code == 2 and "no year 2030" in bad_year.output
    ok = runner.invoke(
        app,
        [
            "scores",
            "import",
            str(tif),
            "--country",
            "SYN",
            "--name",
            "rwi",
            "--year",
            "2017",
            "--no-materialize",
        ],
    )
    assert ok.exit_code == 0, ok.output
    folder = env / "data" / "SYN" / "imports" / "scores"
    assert (folder / "rwi.tif").is_file()
    tiles = pd.DataFrame(
        [
            {"tile_id": t.tile_id, "z": 14, "x": t.x, "y": t.y}
            for t in (Tile(14, X0 + i, Y0 + j) for j in range(3) for i in range(3))
        ]
    )
    frame, report = imports.load_folder(folder, "scores", zoom=14, years=[2016, 2017], tiles=tiles)
    assert sorted(frame["value"]) == [1, 2, 3, 4] and set(frame["year"]) == {2017}
    assert report[0]["raster_outside"] == 5 and report[0]["missing_years"] == "2016"
