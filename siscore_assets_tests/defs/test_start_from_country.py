"""``models: start_from`` end to end on the tiny synthetic countries: TWO reuses SYN's networks;
refused in one line while SYN is untrained (nothing written, SYN's partition intact), then its
Stage-1 network and scorer are SYN's files, recorded by SHA-256, and the scorer declares SYN's
`habitation_model` partition upstream."""

from __future__ import annotations

import pytest
from dagster import AssetKey, materialize

from siscore_assets.core.countries import CountriesFileError, load_countries
from siscore_assets.core.countries_check import check_countries
from siscore_assets.defs.orchestration.runner import step_failures
from siscore_assets_tests.defs.test_recipe_country import country_definitions, materialize_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("start_from_country")]

COUNTRIES = """
default: SYN
countries:
  SYN:
    name: tiny synthetic, trained first
    years: [2016, 2017]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 10, ny: 10, tile_px: 64,
             granule_tiles: 5, n_annotators: 3, pretrain_images: 120, n_districts: 4,
             n_provinces: 2}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, habitation_input_px: 32,
             k_range_urban: [2, 3], k_range_rural: [2, 3], scorer_steps: 6, per_tier: 3}
  TWO:
    name: tiny synthetic starting from SYN (the same small recipe, compatible)
    years: [2017]
    source: {kind: synthetic, seed: 3, x0: 13903, y0: 6163, nx: 10, ny: 10, tile_px: 64,
             granule_tiles: 5, n_annotators: 3, pretrain_images: 120, n_districts: 4,
             n_provinces: 2}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, habitation_input_px: 32,
             k_range_urban: [2, 3], k_range_rural: [2, 3], scorer_steps: 6, per_tier: 3,
             start_from: SYN, start_use: USE}
"""


def countries_text(use: str) -> str:
    return COUNTRIES.replace("USE", use)


def test_two_starts_from_syn(tmp_path):
    defs, _, instance = country_definitions(tmp_path, countries_text("as_is"))
    data = tmp_path / "data"
    assets, resources = list(defs.assets), dict(defs.resources)
    # SYN untrained: refused in one line naming both countries and the missing file
    result = materialize(assets, selection=["habitation_model"], partition_key="TWO",
                         resources=resources, instance=instance, raise_on_error=False)  # fmt: skip
    assert not result.success
    (failure,) = step_failures(instance, result.run_id, "TWO")  # what `siscore run` prints
    assert failure.line.startswith(
        "TWO habitation_model: country TWO: start_from SYN needs SYN's trained habitation.pt, "
        f"but {data / 'SYN' / 'models' / 'habitation.pt'} is missing: run SYN first"
    )
    assert not (data / "TWO" / "models" / "habitation.pt").exists()
    assert not (data / "SYN" / "models").exists()  # the other partition is left alone

    materialize_for(defs, instance, "scorer", "SYN", [2016, 2017])
    syn_models = data / "SYN" / "models"
    syn_bytes = {f.name: f.read_bytes() for f in syn_models.glob("*.pt")}
    materialize_for(defs, instance, "scorer", "TWO", [2017])
    two = data / "TWO" / "models"
    for name in ("habitation.pt", "scorer.pt", "scorer_seed0.pt"):
        assert (two / name).read_bytes() == syn_bytes[name] or name == "scorer.pt"
    assert {f.name: f.read_bytes() for f in syn_models.glob("*.pt")} == syn_bytes

    meta = instance.get_latest_materialization_event(AssetKey("scorer")).asset_materialization
    md = meta.metadata
    assert meta.partition == "TWO" and md["start_from"].value == "SYN"
    assert md["start_use"].value == "as_is" and md["steps"].value == 0
    records = md["source_checkpoints"].value
    assert records["scorer.pt"]["path"] == str(syn_models / "scorer.pt")
    assert len(records["scorer_seed0.pt"]["sha256"]) == 64

    graph = defs.resolve_asset_graph()
    mapping = graph.get_partition_mapping(AssetKey("scorer"), AssetKey("habitation_model"))
    assert set(mapping.downstream_partition_keys_by_upstream_partition_key["SYN"]) == {
        "SYN",
        "TWO",
    }


def test_a_start_whose_input_differs_is_refused_at_the_countries_file(tmp_path):
    text = countries_text("init").replace(
        "start_from: SYN, start_use: init}",
        "start_from: SYN, start_use: init, texture_px: 0, grayscale: true}",
    )
    path = tmp_path / "countries.yaml"
    path.write_text(text)
    with pytest.raises(CountriesFileError) as err:
        check_countries(load_countries(path), ["TWO"])
    line = str(err.value)
    assert line.startswith(f"{path}:")
    assert "country TWO: cannot start_from SYN (init)" in line and "grayscale True vs False" in line


def test_start_from_an_unknown_country_is_refused_at_the_countries_file(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(countries_text("init").replace("start_from: SYN", "start_from: ZZZ"))
    with pytest.raises(CountriesFileError, match=r"country TWO: start_from ZZZ is not a country"):
        check_countries(load_countries(path), ["TWO"])
