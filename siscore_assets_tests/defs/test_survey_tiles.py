"""`survey_tiles` from a `surveys:` layer, read by `validation_grid` as one more proxy; a negative
displacement radius is a countries-file error at its line; a bad row writes nothing."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pytest
import statsmodels.api as sm
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


def _survey(
    path, syn: SyntheticCountry, bad_row: str | None = None, shift: float = 0.0, copies: int = 1
) -> None:
    """One cluster at each inhabited tile's centre (``copies``: that many, values apart)."""
    truth = syn.tile_truth(2016)
    rows = ["lon,lat,value,year,urban"]
    for t in truth[truth["inhabited"]].itertuples():
        lon, lat = syn.tiles[t.Index].center_lonlat()
        value = 4 * (t.development - shift) if shift else t.development
        for k in range(copies):
            flag = "urban" if t.urban else "rural"
            rows.append(f"{lon},{lat},{value + 0.01 * k:.4f},2016,{flag}")
    if bad_row:
        rows.append(bad_row)
    path.write_text("\n".join(rows) + "\n")


def _defs(tmp_path, rural: str = "5", districts: str = "none"):
    survey = tmp_path / "dhs.csv"
    countries = tmp_path / "countries.yaml"
    text = textwrap.dedent(TINY).replace("SURVEY", str(survey)).replace("RURAL", rural)
    text = text.replace("districts: none", f"districts: {districts}")
    countries.write_text(text)
    defs, db = definitions_for(countries, tmp_path)
    return survey, db, defs


def _grid(db, syn: SyntheticCountry):
    truth = syn.tile_truth(2016)
    grid = truth[["tile_id", "z", "x", "y", "inhabited"]].assign(
        country="TINY", year=2016, raw_score=truth["development"], score=truth["development"]
    )
    wh, keys = Warehouse(database=str(db)), {"country": "TINY", "year": 2016}
    wh.write("siscore_grid", grid, keys)
    wh.write("habitation", grid[["country", "year", "tile_id", "z", "x", "y", "inhabited"]], keys)
    return truth


def _runner(defs):
    instance = DagsterInstance.ephemeral()

    def run(names, key, ok=True):
        return materialize(
            list(defs.assets), selection=select(*names), partition_key=key,
            resources=dict(defs.resources), instance=instance, raise_on_error=ok,
        )  # fmt: skip

    return run


def test_survey_proxy_is_validated(tmp_path):
    syn = SyntheticCountry(SPEC)
    survey, db, defs = _defs(tmp_path)
    _survey(survey, syn, copies=2)  # two clusters per place: clusters are not tiles
    truth = _grid(db, syn)
    run = _runner(defs)
    run(["survey_tiles"], "TINY")
    run(["validation_grid"], country_year_key("TINY", 2016))
    with duckdb.connect(str(db), read_only=True) as conn:
        tiles = conn.execute("SELECT * FROM survey_tiles").df()
        clusters = conn.execute("SELECT * FROM survey_clusters").df()
        val = conn.execute(
            "SELECT * FROM validation_grid WHERE model = 'siscore' AND subset = 'all'"
        ).df()
    n_clusters = 2 * int(truth["inhabited"].sum())
    assert (tiles["name"] == "dhs_wealth").all() and tiles["mass"].sum() == pytest.approx(
        n_clusters, rel=0.2
    )  # mass outside the 16 x 16 block (and under min_mass) is not kept
    # one observation per cluster (each one's expected score), not per tile it is spread over
    assert clusters["cluster"].nunique() == n_clusters and len(tiles) != n_clusters
    row = val[val["proxy"] == "dhs_wealth"].iloc[0]
    assert row["n"] + row["dropped_no_score"] == n_clusters and row["spearman_rho"] > 0.5
    assert row["n"] > 0.9 * n_clusters  # only clusters mostly off the grid's edge have no score

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


def test_a_signed_survey_is_regressed_untransformed_per_district(tmp_path):
    """A wealth index is signed: `validation_district` regresses the survey's district means as
    they are (log1p would drop the districts at or below -1 and bend the rest)."""
    syn = SyntheticCountry(SPEC)
    survey, db, defs = _defs(tmp_path, districts="generated")
    _survey(survey, syn, shift=0.5)
    _grid(db, syn)
    run = _runner(defs)
    run(["districts", "survey_tiles"], "TINY")
    run(["validation_district"], country_year_key("TINY", 2016))
    with duckdb.connect(str(db), read_only=True) as conn:
        panel = conn.execute("SELECT * FROM validation_district_panel").df()
        val = conn.execute("SELECT * FROM validation_district WHERE model = 'siscore'").df()
    row = val[val["proxy"] == "dhs_wealth"].iloc[0]
    d = panel[np.isfinite(panel["dhs_wealth"]) & np.isfinite(panel["siscore"])]
    assert (d["dhs_wealth"] < 0).any() and row["n"] == len(d)
    ref = sm.OLS(d["dhs_wealth"], sm.add_constant(d["siscore"])).fit()
    assert row["r2"] == pytest.approx(ref.rsquared, rel=1e-9)
