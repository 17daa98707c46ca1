"""Survey points: the displacement expectation (mass conserved, exact when the radius is 0, the
inhabited prior renormalises), and bad files / rules as one line naming file and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.analysis import surveys
from siscore_assets.core.imagery.grid import Tile, block_bounds_3857

BOUNDS = block_bounds_3857(14, 13903, 6163, 8, 8)
YEARS = (2016, 2019)


def _lonlat(col: float, row: float) -> tuple[float, float]:
    """lon/lat of a place in tile units of the 8 x 8 block."""
    left, _, right, top = BOUNDS
    side = (right - left) / 8
    x, y = left + col * side, top - row * side
    lon = np.degrees(x / surveys.EARTH_RADIUS_M)
    lat = np.degrees(2 * np.arctan(np.exp(y / surveys.EARTH_RADIUS_M)) - np.pi / 2)
    return float(lon), float(lat)


def _write(tmp_path, rows: list[str]) -> str:
    path = tmp_path / "dhs.csv"
    path.write_text("lon,lat,value,year,urban,w\n" + "\n".join(rows) + "\n")
    return path


def _read(path, **kw):
    return surveys.read_surveys(
        path, value="value", year="year", urban="urban", weight="w", bounds_3857=BOUNDS,
        years=YEARS, **kw,
    )  # fmt: skip


def test_expectation_conserves_mass_and_is_exact_without_displacement(tmp_path):
    a, b = _lonlat(2.5, 2.5), _lonlat(5.5, 5.5)
    pts = _read(
        _write(tmp_path, [f"{a[0]},{a[1]},1.0,2016,urban,1", f"{b[0]},{b[1]},3.0,2016,0,2"])
    )
    exact = surveys.tile_values(pts, 14)
    assert len(exact) == 2 and exact["mass"].tolist() == [1.0, 1.0]  # clusters, not weight
    assert (exact["x"] == [13905, 13908]).all() and (exact["y"] == [6165, 6168]).all()
    rule = surveys.Displacement()
    spread = surveys.tile_values(pts, 14, rule)
    assert spread["mass"].sum() == pytest.approx(2.0)
    assert len(spread) > 20  # rural 5 km (and 10 km) reach well beyond the ~2.5 km tile
    # the urban point's own tile keeps the largest share (uniform distance: dense at the centre)
    own = spread[(spread["x"] == 13905) & (spread["y"] == 6165)].iloc[0]
    assert own["mass"] == spread[spread["n_points"] == 1]["mass"].max() or own["n_points"] == 2
    zero = surveys.Displacement(0, 0, 0, 0)
    pd.testing.assert_frame_equal(
        surveys.tile_values(pts, 14, zero)[["x", "y", "value", "mass"]],
        exact[["x", "y", "value", "mass"]],
    )


def test_inhabited_prior_renormalises(tmp_path):
    a = _lonlat(2.5, 2.5)
    pts = _read(_write(tmp_path, [f"{a[0]},{a[1]},1.0,2016,urban,1"]))
    prior = pd.Series(
        False, index=pd.MultiIndex.from_product([range(13903, 13911), range(6163, 6171)])
    )
    prior[(13906, 6165)] = True
    out = surveys.tile_values(pts, 14, surveys.Displacement(), prior=prior)
    assert out[["x", "y"]].values.tolist() == [[13906, 6165]] and out["mass"].iloc[0] == 1.0


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("{far},0.5,2016,urban,1", "dhs.csv:3: point ("),
        ("{ok},0.5,,urban,1", "dhs.csv:3: year '' is missing or not a year"),
        ("{ok},0.5,2017,urban,1", "dhs.csv:3: year 2017 is not a configured year"),
        ("{ok},rich,2016,urban,1", "dhs.csv:3: value 'rich' is not a number"),
        ("{ok},0.5,2016,suburb,1", "dhs.csv:3: urban flag 'suburb' is not urban/rural"),
        ("{ok},0.5,2016,rural,-1", "dhs.csv:3: weight '-1' is not a non-negative number"),
    ],
)
def test_bad_rows_are_one_line(tmp_path, row, problem):
    ok = "{},{}".format(*_lonlat(1.5, 1.5))
    far = "{},{}".format(*_lonlat(30.0, 1.5))
    path = _write(tmp_path, [f"{ok},0.1,2016,rural,1", row.format(ok=ok, far=far)])
    with pytest.raises(surveys.SurveyFileError) as err:
        _read(path)
    assert str(err.value).startswith(str(tmp_path / problem)) and "\n" not in str(err.value)
    if "point (" in problem:
        assert str(err.value).endswith("is outside the country")


def test_missing_columns_and_negative_radius(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("lon,lat,value\n125.6,40.0,1\n")
    with pytest.raises(surveys.SurveyFileError, match=r"s.csv:1: missing column\(s\) year, urban"):
        surveys.read_surveys(
            path, value="value", year="year", urban="urban", bounds_3857=BOUNDS, years=YEARS
        )
    with pytest.raises(surveys.SurveyFileError, match="displacement.rural_km must be >= 0, got -5"):
        surveys.Displacement(rural_km=-5)


def test_survey_tiles_per_year_with_grid_ids(tmp_path):
    a = _lonlat(2.5, 2.5)
    pts = _read(
        _write(tmp_path, [f"{a[0]},{a[1]},1.0,2016,urban,1", f"{a[0]},{a[1]},2.0,2019,1,1"])
    )
    tiles = [Tile(14, 13903 + i, 6163 + j) for j in range(8) for i in range(8)]
    grid = pd.DataFrame(
        {"tile_id": [t.tile_id for t in tiles], "z": 14, "x": [t.x for t in tiles],
         "y": [t.y for t in tiles], "inhabited": True}
    )  # fmt: skip
    assert surveys.grid_bounds(grid) == pytest.approx(BOUNDS)
    grids = {2016: grid, 2019: grid}
    out = surveys.survey_tiles(pts, grids, surveys.Displacement(), min_mass=0.0)
    kept = surveys.survey_tiles(pts, grids, surveys.Displacement(), min_mass=0.05)
    assert 0 < len(kept) < len(out) and kept["mass"].min() >= 0.05
    assert set(out["year"]) == {2016, 2019}
    assert out["tile_id"].isin(grid["tile_id"]).all()
    assert out.groupby("year")["mass"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert (out.loc[out["year"] == 2019, "value"] == 2.0).all()


def _spread(tmp_path, weights: list[float]) -> pd.DataFrame:
    """Three clusters near each other, with these weights, spread by DHS's rule."""
    places = [_lonlat(3.2, 3.5), _lonlat(3.9, 3.1), _lonlat(4.4, 4.0)]
    rows = [f"{lo},{la},{v},2016,rural,{w}" for (lo, la), v, w in zip(places, (1, 2, 6), weights)]
    return _read(_write(tmp_path, rows))


def test_min_mass_counts_clusters_whatever_the_weights_unit(tmp_path):
    """The same clusters keep the same tiles whether their weights are 1, households (~25) or
    normalised (0.1): ``min_mass`` is expected clusters, the weights only average values."""
    rule = surveys.Displacement()
    kept = {
        w: surveys.tile_values(_spread(tmp_path, [w] * 3), 14, rule, min_mass=0.05)
        for w in (1.0, 25.0, 0.1)
    }
    assert 0 < len(kept[1.0]) < len(surveys.tile_values(_spread(tmp_path, [1.0] * 3), 14, rule))
    for w in (25.0, 0.1):
        pd.testing.assert_frame_equal(kept[w], kept[1.0], rtol=1e-9)


def test_weights_average_values_but_not_mass(tmp_path):
    a = _lonlat(2.5, 2.5)
    pts = _read(
        _write(tmp_path, [f"{a[0]},{a[1]},1.0,2016,urban,1", f"{a[0]},{a[1]},5.0,2016,urban,3"])
    )
    out = surveys.tile_values(pts, 14)
    assert out["mass"].tolist() == [2.0] and out["value"].tolist() == [(1.0 + 3 * 5.0) / 4]
    assert out["n_points"].tolist() == [2]


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (["{ok},0.1,2016,rural,1,x", "", "{ok},rich,2016,rural,1,x"], 4),  # after a blank line
        (['{ok},0.1,2016,rural,1,"two\nlines"', "{ok},rich,2016,rural,1,x"], 4),  # quoted newline
        (["", "", "{ok},rich,2016,rural,1,x"], 4),
    ],
)
def test_bad_row_is_the_files_own_line(tmp_path, rows, line):
    ok = "{},{}".format(*_lonlat(1.5, 1.5))
    path = tmp_path / "dhs.csv"
    path.write_text("lon,lat,value,year,urban,w,note\n" + "\n".join(rows).format(ok=ok) + "\n")
    with pytest.raises(surveys.SurveyFileError) as err:
        _read(path)
    assert str(err.value) == f"{path}:{line}: value 'rich' is not a number"


def test_survey_rows_carry_their_lines_and_too_many_fields_is_one_line(tmp_path):
    ok = "{},{}".format(*_lonlat(1.5, 1.5))
    path = _write(tmp_path, [f"{ok},0.1,2016,rural,1", "", f"{ok},0.2,2016,rural,1"])
    assert _read(path)["row"].tolist() == [2, 4]
    path.write_text(f"lon,lat,value,year,urban,w\n{ok},0.1,2016,rural,1,9\n")
    with pytest.raises(surveys.SurveyFileError, match=r"dhs.csv:2: 7 fields, the header has 6$"):
        _read(path)
    path.write_bytes(f"lon,lat,value,year,urban,w\n{ok},0.1,2016,rural,1\n".encode() + b"\xff\n")
    with pytest.raises(surveys.SurveyFileError, match=r"dhs.csv:3: not UTF-8 text$"):
        _read(path)


def test_cluster_scores_are_expectations_over_the_same_probabilities(tmp_path):
    """A cluster's expected score is its tiles' scores weighted by the probabilities the tile
    values use; tiles without a score are left out and the rest renormalised, unless they held
    under half of the cluster's probability."""
    tiles = [Tile(14, 13903 + i, 6163 + j) for j in range(8) for i in range(8)]
    grid = pd.DataFrame(
        {"tile_id": [t.tile_id for t in tiles], "z": 14, "x": [t.x for t in tiles],
         "y": [t.y for t in tiles], "inhabited": True}
    )  # fmt: skip
    pts = _spread(tmp_path, [1.0, 1.0, 1.0])
    tab, clusters = surveys.survey_tables(pts, {2016: grid}, surveys.Displacement(), min_mass=0.0)
    assert sorted(clusters["cluster"].unique()) == [2, 3, 4]  # the clusters' lines in the file
    assert clusters.groupby("cluster")["p"].sum().to_numpy() == pytest.approx(1.0)
    # the tile values are the same probabilities, summed per tile
    mass = clusters.groupby("tile_id")["p"].sum()
    np.testing.assert_allclose(tab.set_index("tile_id")["mass"], mass[tab["tile_id"]])
    score = pd.Series(np.linspace(0, 1, len(grid)), index=grid["tile_id"])
    frame = grid.assign(score_a=grid["tile_id"].map(score))
    per = surveys.cluster_scores(clusters, frame, ["score_a"]).set_index("cluster")
    one = clusters[clusters["cluster"] == 3]
    assert per.loc[3, "score_a"] == pytest.approx(
        (one["p"] * one["tile_id"].map(score)).sum() / one["p"].sum()
    )
    assert per["value"].tolist() == [1, 2, 6]
    # cluster 3's most likely tile has no score: the rest renormalised; no score at all: NaN
    top = one.loc[one["p"].idxmax(), "tile_id"]
    holed = frame.assign(score_a=frame["score_a"].where(frame["tile_id"] != top))
    rest = one[one["tile_id"] != top]
    got = surveys.cluster_scores(clusters, holed, ["score_a"]).set_index("cluster")
    assert got.loc[3, "score_a"] == pytest.approx(
        (rest["p"] * rest["tile_id"].map(score)).sum() / rest["p"].sum()
    )
    empty = surveys.cluster_scores(clusters, frame.assign(score_a=np.nan), ["score_a"])
    assert empty["score_a"].isna().all()
