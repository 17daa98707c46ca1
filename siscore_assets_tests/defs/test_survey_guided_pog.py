"""A survey-guided POG: a country whose only ground data is a survey gets one in `guided_pogs`
(from `survey_tiles`, displacement handled), ordering the clusters as the survey's values do,
and `models.guided_annotator` can name it."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pandas as pd
from dagster import DagsterInstance, materialize

from siscore_assets.core import ranking
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
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
    models: {guided_annotator: dhs_wealth}
    surveys: {file: SURVEY, name: dhs_wealth}
"""


def test_a_survey_alone_guides_a_pog(tmp_path):
    syn = SyntheticCountry(SPEC)
    truth = syn.tile_truth(2016)
    survey = tmp_path / "dhs.csv"
    rows = ["lon,lat,value,year,urban"]
    for t in truth[truth["inhabited"]].itertuples():
        lon, lat = syn.tiles[t.Index].center_lonlat()
        rows.append(f"{lon},{lat},{t.development:.4f},2016,{'urban' if t.urban else 'rural'}")
    survey.write_text("\n".join(rows) + "\n")
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(TINY).replace("SURVEY", str(survey)))
    defs, db = definitions_for(countries, tmp_path)
    # Stage 1 as if run: three inhabited clusters by development tercile, 3 = uninhabited
    tiles = truth[["tile_id", "z", "x", "y", "inhabited", "urban"]].assign(
        country="TINY", year=2016
    )
    dev = truth["development"].where(truth["inhabited"])
    tercile = pd.qcut(dev, 3, labels=False)
    tiles["cluster_id"] = np.where(truth["inhabited"], tercile.fillna(0), 3).astype(int)
    wh = Warehouse(database=str(db))
    wh.write(
        "habitation", tiles.drop(columns=["cluster_id", "urban"]), {"country": "TINY", "year": 2016}
    )
    wh.write("cluster_members", tiles, {"country": "TINY"})
    groups = ["rural", "rural", "urban", "uninhabited"]
    clusters = pd.DataFrame(
        {"country": "TINY", "cluster_id": range(4), "cluster_group": groups,
         "n_tiles": np.bincount(tiles["cluster_id"], minlength=4)}
    )  # fmt: skip
    wh.write("clusters", clusters, {"country": "TINY"})
    instance = DagsterInstance.ephemeral()
    for names in (["survey_tiles"], ["guided_pogs", "guided_cluster_means"]):
        result = materialize(
            list(defs.assets), selection=select(*names), partition_key="TINY",
            resources=dict(defs.resources), instance=instance, raise_on_error=True,
        )  # fmt: skip
    assert (
        result.asset_materializations_for_node("guided_pogs")[-1].metadata["status"].value == "ok"
    )
    with duckdb.connect(str(db), read_only=True) as conn:
        pogs = conn.execute("SELECT * FROM guided_pogs").df()
        means = conn.execute("SELECT * FROM guided_cluster_means ORDER BY tier").df()
    assert pogs["proxy"].tolist() == ["dhs_wealth"]  # the default raster proxies: none here
    assert means["cluster_id"].tolist() == [0, 1, 2]  # least developed tercile first
    assert (means["n_tiles"] > 0).all()
    # what `annotator_pogs` reads for the guided annotator `guided_dhs_wealth`
    pog = ranking.parse_edges(pogs["pog_edges"].iloc[0], source="guided_pogs", known_ids=[0, 1, 2])
    assert pog.tier_paths(max_paths=1)[0] == [[0], [1], [2]]
