"""Imported scores/proxies: CSV and raster reading, every problem named by file, line and column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_bounds

from siscore_assets.core.analysis import imported as imports
from siscore_assets.core.imagery.grid import Tile

Z, X0, Y0 = 14, 13903, 6163


def _write(path, text: str):
    path.write_text(text)
    return path


def test_csv_with_yx_and_zxy_ids_and_years(tmp_path):
    f = _write(
        tmp_path / "s.csv",
        f"tile_id,year,score\n{Y0}_{X0},2016,0.5\n14/{X0 + 1}/{Y0},2016,0.25\n"
        f"\n{Y0}_{X0},2017,0.75\n",
    )
    df = imports.read_tile_csv(f, "score", zoom=Z, years=[2016, 2017])
    assert list(df["tile_id"]) == [f"14/{X0}/{Y0}", f"14/{X0 + 1}/{Y0}", f"14/{X0}/{Y0}"]
    assert list(df["year"]) == [2016, 2016, 2017] and list(df["source_line"]) == [2, 3, 5]
    assert list(df["value"]) == [0.5, 0.25, 0.75]
    nyear = imports.read_tile_csv(
        _write(tmp_path / "n.csv", f"y_x,value\n{Y0}_{X0},3\n"), "value", zoom=Z
    )
    assert nyear["year"].isna().all()
    assert len(imports.for_year(pd.concat([df, nyear]), 2017)) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("tile_id,score\nabc,0.5\n", r"x\.csv:2: column tile_id: not a tile id: 'abc'"),
        (
            "tile_id,score\n6163_13903,high\n",
            r"x\.csv:2: column score: not a finite number: 'high'",
        ),
        ("tile_id,score\n6163_13903,nan\n", r"x\.csv:2: column score: not a finite number"),
        (
            "tile_id,year,score\n6163_13903,2016,1\n6163_13903,2016,2\n",
            (
                r"x\.csv:3: column tile_id: duplicate tile 14/13903/6163 for year 2016 "
                r"\(first on line 2\)"
            ),
        ),
        (
            "tile_id,year,score\n6163_13903,2031,1\n",
            r"x\.csv:2: column year: 2031 is not a configured year",
        ),
        ("tile_id,year,score\n6163_13903,,1\n", r"x\.csv:2: column year: not an integer year"),
        ("tile_id,value\n6163_13903,1\n", r"x\.csv:1: missing column\(s\) score"),
        ("id,score\n6163_13903,1\n", r"x\.csv:1: missing column\(s\) tile_id"),
        ("tile_id,score\n6163_13903\n", r"x\.csv:2: 1 fields, header has 2"),
        ("", r"x\.csv: empty file"),
        ("tile_id,score\n", r"x\.csv: no data rows"),
    ],
)
def test_csv_problems_name_file_line_and_column(tmp_path, body, expected):
    with pytest.raises(imports.ImportFileError, match=expected):
        imports.read_tile_csv(_write(tmp_path / "x.csv", body), "score", zoom=Z, years=[2016, 2017])


def test_many_problems_are_listed_together(tmp_path):
    body = "tile_id,score\n" + "".join(f"bad{i},1\n" for i in range(15))
    with pytest.raises(imports.ImportFileError, match=r"15 problem\(s\)(.|\n)*and 5 more"):
        imports.read_tile_csv(_write(tmp_path / "x.csv", body), "score", zoom=Z)


def test_names_are_checked():
    imports.check_name("rwi_2021", "scores")
    for bad in ("siscore", "Bad", "1x", "a-b"):
        with pytest.raises(ValueError):
            imports.check_name(bad, "scores")


def _tiles(n: int = 3) -> pd.DataFrame:
    ts = [Tile(Z, X0 + i, Y0 + j) for j in range(n) for i in range(n)]
    return pd.DataFrame(
        {"tile_id": [t.tile_id for t in ts], "z": Z, "x": [t.x for t in ts], "y": [t.y for t in ts]}
    )


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_raster_sampled_at_tile_centres_in_any_crs(tmp_path):
    """A lon/lat raster with one pixel per tile column/row (value = 10*col + row); tiles outside
    it and nodata pixels are counted, not silently lost."""
    w, _, _, n_ = Tile(Z, X0, Y0).bounds_lonlat()
    _, s, e, _ = Tile(Z, X0 + 1, Y0 + 1).bounds_lonlat()  # covers the 2 x 2 top-left tiles
    data = np.array([[0.0, 10.0], [1.0, -9999.0]], dtype="float32")
    path = tmp_path / "r.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2,
        height=2,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_bounds(w, s, e, n_, 2, 2),
        nodata=-9999.0,
    ) as dst:
        dst.write(data, 1)
    out, counts = imports.sample_raster(path, _tiles())
    assert counts == {"outside": 5, "nodata": 1}
    got = dict(zip(out["tile_id"], out["value"], strict=True))
    assert got == {f"14/{X0}/{Y0}": 0.0, f"14/{X0 + 1}/{Y0}": 10.0, f"14/{X0}/{Y0 + 1}": 1.0}
    with rasterio.open(
        tmp_path / "nocrs.tif", "w", driver="GTiff", width=2, height=2, count=1, dtype="float32"
    ) as dst:
        dst.write(data, 1)
    with pytest.raises(imports.ImportFileError, match="no CRS"):
        imports.check_raster(tmp_path / "nocrs.tif")


def test_a_csv_that_is_not_utf8_is_named_with_its_line(tmp_path):
    """A Latin-1 export failed with "'utf-8' codec can't decode byte 0xff", naming no file."""
    path = tmp_path / "latin.csv"
    path.write_bytes(b"tile_id,score\n6163_13903,1\n6164_13903,caf\xe9\n")
    with pytest.raises(imports.ImportFileError) as err:
        imports.read_tile_csv(path, "score", zoom=Z)
    assert str(err.value) == f"{path}:3: not UTF-8 text (byte 0xe9): save the file as CSV UTF-8"
    path.write_bytes(b"\xff\xfetile_id,score\n")
    with pytest.raises(imports.ImportFileError, match=r"latin\.csv:1: not UTF-8 text \(byte 0xff"):
        imports.read_tile_csv(path, "score", zoom=Z)
