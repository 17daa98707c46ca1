"""The `score_file` source kind of an analysis-only country: the schema, the cheap checks of what
it names (``countries_check``: the file, its header, each year's GeoTIFF), and its grid."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.analysis import score_source
from siscore_assets.core.countries import CountriesFileError, load_countries
from siscore_assets.core.countries_check import check_countries

FILE = """
countries:
  ANA:
    years: [2016, 2018]
    source: {kind: score_file, file: "SCORES"}
"""


def _registry(tmp_path, scores: str):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(FILE).replace("SCORES", scores))
    return load_countries(path), path


def test_a_score_file_country_has_no_layers_and_its_grid_comes_from_the_ids(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("tile_id,year,score\n14/5/7,2016,0.5\n7_5,2018,0.25\n14/6/7,2018,0\n")
    reg, _ = _registry(tmp_path, str(csv))
    ana = reg.get("ANA")
    assert ana.analysis_only and not ana.is_synthetic
    assert [ana.has_layer(x) for x in ("districts", "proxies", "covariates")] == [False] * 3
    check_countries(reg)
    tiles = score_source.country_tiles(ana, chunk_rows=1)  # chunked reading, one row a chunk
    assert tiles["tile_id"].tolist() == ["14/5/7", "14/6/7"]
    grid = score_source.country_year_scores(ana, 2018)
    assert grid["tile_id"].tolist() == ["14/5/7", "14/6/7"]
    assert grid["inhabited"].tolist() == [True, False]


def test_what_a_score_file_source_names_is_checked_at_its_line(tmp_path):
    reg, path = _registry(tmp_path, str(tmp_path / "missing.csv"))
    with pytest.raises(CountriesFileError, match=rf"^{path}:5: country ANA: score file not found"):
        check_countries(reg)
    bad = tmp_path / "bad.csv"
    bad.write_text("tile,year,value\n")
    reg, path = _registry(tmp_path, str(bad))
    with pytest.raises(CountriesFileError) as err:
        check_countries(reg)
    assert str(err.value) == (
        f"{path}:5: country ANA: {bad}:1: missing column(s) tile_id, score "
        "(header: tile, year, value)"
    )
    reg, path = _registry(tmp_path, str(tmp_path / "s_{year}.tif"))
    with pytest.raises(CountriesFileError, match=rf"^{path}:4: .*s_2016.tif"):
        check_countries(reg)  # the first year's raster is missing: located at that year


def test_a_geotiff_score_file_needs_the_year_in_its_name(tmp_path):
    with pytest.raises(CountriesFileError, match="put {year} in its name"):
        _registry(tmp_path, str(tmp_path / "s.tif"))


def test_a_geotiff_per_year_gives_the_rasters_tiles_and_scores(tmp_path):
    """The rasters `siscore_raster` writes (one float32 pixel a tile, nodata where uninhabited)
    read back as a score-file country's grid: the inhabited tiles, their scores."""
    from siscore_assets.core.imagery.grid import tiles_in_block
    from siscore_assets.core.maps.rasters import write_grid_geotiff

    tiles = tiles_in_block(14, 13903, 6163, 5, 4)
    grid = pd.DataFrame(
        {"tile_id": [t.tile_id for t in tiles], "z": 14, "x": [t.x for t in tiles],
         "y": [t.y for t in tiles], "score": np.linspace(0.05, 1, len(tiles)).astype(np.float32)}
    )  # fmt: skip
    grid["inhabited"] = np.arange(len(tiles)) % 3 != 0
    for year in (2016, 2018):
        write_grid_geotiff(grid, "score", tmp_path / f"s_{year}.tif", mask_col="inhabited")
    reg, _ = _registry(tmp_path, str(tmp_path / "s_{year}.tif"))
    check_countries(reg)
    ana = reg.get("ANA")
    got = score_source.country_year_scores(ana, 2018).sort_values("tile_id", ignore_index=True)
    want = grid[grid["inhabited"]].sort_values("tile_id", ignore_index=True)
    assert got["tile_id"].tolist() == want["tile_id"].tolist()
    assert got["score"].to_numpy() == pytest.approx(want["score"].to_numpy(), abs=1e-7)
    assert score_source.country_tiles(ana)["tile_id"].tolist() == sorted(want["tile_id"])
