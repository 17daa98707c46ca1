"""Every table an asset reads is a declared dependency with the partition mapping of the read:
the UI marks the asset stale when one changes, and a run (or a `siscore run` wave) never
starts it before what it reads."""

from __future__ import annotations

import textwrap

import pytest
from dagster import AssetKey

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import make_partitions
from siscore_assets.defs.orchestration.runner import plan_waves
from siscore_assets_tests.conftest import TINY_COUNTRIES

READS = {
    "web_map": {
        "patches": "years",
        "siscore_grid": "years",
        "validation_district": "years",
        "validation_grid": "years",
        "validation_internal": "same",
        "development_regression": "same",
    },
    "stac_catalog": {"siscore_grid": "years", "change_raster_files": "years"},
    "validation_internal": {
        "clusters": "same",
        "cluster_members": "same",
        "ensemble_pog": "same",
        "habitation_model": "same",
    },
}


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reads")
    countries = tmp / "countries.yaml"
    countries.write_text(textwrap.dedent(TINY_COUNTRIES).replace("{missing}", str(tmp / "none")))
    return build_definitions(
        load_countries(countries),
        data_root=str(tmp / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp / "w.duckdb"),
    )


@pytest.mark.parametrize("asset", sorted(READS))
def test_reads_are_declared_with_their_partition_mapping(defs, asset):
    p = make_partitions(defs.resources["settings"].registry())
    spec = defs.get_assets_def(asset).specs_by_key[AssetKey(asset)]
    deps = {d.asset_key.to_user_string(): d for d in spec.deps}
    for table, how in READS[asset].items():
        assert table in deps, f"{asset} reads {table} without declaring it"
        want = p.from_years(table).partition_mapping if how == "years" else None
        assert deps[table].partition_mapping == want, (asset, table)


def test_the_waves_run_every_reader_after_what_it_reads(defs):
    waves = plan_waves(defs)
    wave_of = {n: i for i, w in enumerate(waves) for n in w.names}
    for asset, reads in READS.items():
        for table in reads:
            assert wave_of[table] < wave_of[asset], (asset, table)
    job = defs.resolve_job_def("country_models")
    assert AssetKey("web_map") in job.asset_layer.selected_asset_keys
