"""`survey_tiles` from a `surveys:` layer, read by `validation_grid` as one more proxy; a negative
displacement radius is a countries-file error at its line; a bad row writes nothing."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.core.countries import CountriesFileError, load_countries
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.common.resources import Warehouse
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

SPEC = SyntheticSpec(seed=3, nx=16, ny=16, n_districts=6, n_provinces=2, years=(2016,))
TINY = """
default: TINY
countries:
  TINY:
    years: [2016]
    districts: none
    proxies: none
    covariates: none
    source: {kind: synthetic, seed: 3, x0: 13903, y0: 6163, nx: 16, ny: 16, tile_px: 32,
             n_districts: 6, n_provinces: 2, granule_tiles: 16}
    surveys:
      file: SURVEY
      name: dhs_wealth
      displacement: {urban_km: 2, rural_km: RURAL}
"""


def _survey(path, syn: SyntheticCountry, bad_row: str | None = None) -> None:
    truth = syn.tile_truth(2016)
    rows = ["lon,lat,value,year,urban"]
    for t in truth[truth["inhabited"]].itertuples():
        lon, lat = syn.tiles[t.Index].center_lonlat()
        rows.append(f"{lon},{lat},{t.development:.4f},2016,{'urban' if t.urban else 'rural'}")
    if bad_row:
        rows.append(bad_row)
    path.write_text("\n".join(rows) + "\n")


def _defs(tmp_path, rural: str = "5"):
    survey = tmp_path / "dhs.csv"
    countries = tmp_path / "countries.yaml"
    text = textwrap.dedent(TINY).replace("SURVEY", str(survey)).replace("RURAL", rural)
    countries.write_text(text)
    defs, db = definitions_for(countries, tmp_path)
    return survey, db, defs


def test_survey_proxy_is_validated(tmp_path):
    syn = SyntheticCountry(SPEC)
    survey, db, defs = _defs(tmp_path)
    _survey(survey, syn)
    truth = syn.tile_truth(2016)
    grid = truth[["tile_id", "z", "x", "y", "inhabited"]].assign(
        country="TINY", year=2016, raw_score=truth["development"], score=truth["development"]
    )
    wh, keys = Warehouse(database=str(db)), {"country": "TINY", "year": 2016}
    wh.write("siscore_grid", grid, keys)
    wh.write("habitation", grid[["country", "year", "tile_id", "z", "x", "y", "inhabited"]], keys)
    instance = DagsterInstance.ephemeral()

    def run(names, key, ok=True):
        return materialize(
            list(defs.assets), selection=select(*names), partition_key=key,
            resources=dict(defs.resources), instance=instance, raise_on_error=ok,
        )  # fmt: skip

    run(["survey_tiles"], "TINY")
    run(["validation_grid"], country_year_key("TINY", 2016))
    with duckdb.connect(str(db), read_only=True) as conn:
        tiles = conn.execute("SELECT * FROM survey_tiles").df()
        val = conn.execute(
            "SELECT * FROM validation_grid WHERE model = 'siscore' AND subset = 'all'"
        ).df()
    assert (tiles["name"] == "dhs_wealth").all() and tiles["mass"].sum() == pytest.approx(
        truth["inhabited"].sum(), rel=0.2
    )  # mass outside the 16 x 16 block (and under min_mass) is not kept
    row = val[val["proxy"] == "dhs_wealth"].iloc[0]
    assert row["n"] == len(tiles) and row["spearman_rho"] > 0.5

    # a bad row: the asset fails naming file and row, the earlier rows stay
    lon, lat = syn.tiles[0].center_lonlat()
    _survey(survey, syn, bad_row=f"{lon},{lat},high,2016,urban")
    result = run(["survey_tiles"], "TINY", ok=False)
    assert not result.success
    err = "".join(
        e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure
    )
    assert f"{survey}:{int(truth['inhabited'].sum()) + 2}: value 'high' is not a number" in err
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM survey_tiles").fetchone()[0] == len(tiles)
    assert np.isfinite(tiles["value"]).all()


def test_negative_radius_is_a_countries_file_error(tmp_path):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(TINY).replace("RURAL", "-5"))
    with pytest.raises(CountriesFileError) as err:
        load_countries(countries)
    line = (
        textwrap.dedent(TINY)
        .splitlines()
        .index("      displacement: {urban_km: 2, rural_km: RURAL}")
        + 1
    )
    assert str(err.value).startswith(f"{countries}:{line}:")
    assert "surveys.displacement.rural_km must be >= 0, got -5" in str(err.value)
