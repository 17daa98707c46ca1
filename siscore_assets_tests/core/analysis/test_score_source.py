"""Score files made elsewhere: streamed, checked row by row (one line naming file and row), and
the analysis on the scores read back is exactly the analysis on the scores written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.analysis import districts as districts_lib
from siscore_assets.core.analysis import reports
from siscore_assets.core.analysis import score_source as ss
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec

YEARS = (2016, 2019)


@pytest.fixture(scope="module")
def syn():
    spec = SyntheticSpec(seed=5, nx=16, ny=16, n_districts=6, n_provinces=2, years=YEARS)
    country = SyntheticCountry(spec)
    grids = {}
    for year in YEARS:
        truth = country.tile_truth(year)
        rng = np.random.default_rng(year)
        score = np.where(
            truth["inhabited"], np.clip(truth["development"] + rng.normal(0, 0.05, 256), 0.01, 1), 0
        )
        grids[year] = ss.grid_rows(
            truth[["z", "x", "y"]].assign(score=score, inhabited=truth["inhabited"])
        )
    return country, grids


def _export(grids: dict, path, yx_for=()) -> None:
    """The grids as one score file (``y_x`` ids for the years in ``yx_for``), full precision."""
    parts = []
    for year, g in grids.items():
        ids = g["y"].astype(str) + "_" + g["x"].astype(str) if year in yx_for else g["tile_id"]
        parts.append(pd.DataFrame({"tile_id": ids, "year": year, "score": g["score"]}))
    pd.concat(parts).to_csv(path, index=False, float_format="%.17g")


def test_round_trip_reproduces_district_siscore_and_regression_exactly(syn, tmp_path):
    country, grids = syn
    path = tmp_path / "scores.csv"
    _export(grids, path, yx_for=(2019,))
    read = {y: ss.read_year(path, y, zoom=14, years=YEARS, chunk_rows=100) for y in YEARS}
    for y in YEARS:
        pd.testing.assert_frame_equal(read[y], grids[y])
    layer = country.districts()
    a = districts_lib.aggregate_by_district(grids[2016], ["score"], layer)
    b = districts_lib.aggregate_by_district(read[2016], ["score"], layer)
    pd.testing.assert_frame_equal(a, b)
    table = districts_lib.district_table(layer, "SYN")
    cov = country.tile_covariates()
    prox = {y: country.tile_truth(y)[["tile_id", "nightlight"]] for y in YEARS}

    def regress(g):
        return reports.development_regression(
            g[2016], g[2019], cov, table, prox[2016], prox[2019],
            regressors=["dist_capital_km", "dist_county_km", "near_mine"],
            cluster="district_id", keys={"country": "SYN", "first_year": 2016, "last_year": 2019},
        )  # fmt: skip

    want, got = regress(grids), regress(read)
    assert len(want.table) > 0
    pd.testing.assert_frame_equal(want.table, got.table)
    pd.testing.assert_frame_equal(want.panel, got.panel)


def test_chunks_do_not_change_the_result(syn, tmp_path):
    _, grids = syn
    path = tmp_path / "scores.csv"
    _export(grids, path)
    one = ss.read_year(path, 2019, zoom=14, years=YEARS)
    many = ss.read_year(path, 2019, zoom=14, years=YEARS, chunk_rows=7)
    pd.testing.assert_frame_equal(one, many)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("14/99999/6163,2016,0.5", "scores.csv:4: tile_id '14/99999/6163' is off the grid"),
        ("13/13903/6163,2016,0.5", "scores.csv:4: tile_id '13/13903/6163' is not at the country"),
        ("pyongyang,2016,0.5", "scores.csv:4: tile_id 'pyongyang' is not a tile id"),
        ("14/13903/6170,,0.5", "scores.csv:4: year '' is not an integer year"),
        ("14/13903/6170,2017,0.5", "scores.csv:4: year '2017' is not a configured year"),
        ("14/13903/6170,2016,high", "scores.csv:4: score 'high' is not a finite number"),
        ("6163_13903,2016,0.5", "scores.csv:4: duplicate tile-year (tile x=13903 y=6163, year"),
    ],
)
def test_bad_rows_are_one_line_naming_file_and_row(tmp_path, row, problem):
    path = tmp_path / "scores.csv"
    path.write_text(
        "tile_id,year,score\n14/13903/6163,2016,0.1\n14/13904/6163,2016,0.2\n" + row + "\n"
    )
    with pytest.raises(ss.ScoreFileError) as err:
        ss.read_year(path, 2016, zoom=14, years=YEARS, chunk_rows=2)
    assert str(err.value).startswith(str(tmp_path / problem)) and "\n" not in str(err.value)


def test_missing_columns_and_inhabited_flag(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("tile,year,score\n14/1/1,2016,0.5\n")
    with pytest.raises(ss.ScoreFileError, match=r"s.csv:1: missing column\(s\) tile_id"):
        ss.read_year(path, 2016, zoom=14, years=YEARS)
    path.write_text("tile_id,year,score,inhabited\n14/1/1,2016,0.0,true\n14/1/2,2016,0.3,no\n")
    g = ss.read_year(path, 2016, zoom=14, years=YEARS)
    assert g["inhabited"].tolist() == [True, False] and g["raw_score"].tolist() == [0.0, 0.3]
