"""Only configured country-years exist as partition keys, every cross-partition read is a
declared dependency, and a backfill of every partition of every asset succeeds on a registry
whose countries have different year sets."""

from __future__ import annotations

import textwrap

import duckdb
import pytest
from dagster import AssetKey, DagsterInstance, StaticPartitionMapping

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import (
    country_year_key,
    make_partitions,
    split_country_year,
)
from siscore_assets.defs.orchestration.runner import materialize_all_partitions, plan_waves

TWO_COUNTRIES = """
default: SYA
countries:
  SYA:
    years: [2016, 2017]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, k_range_urban: [2, 2], k_range_rural: [2, 2],
             scorer_steps: 4, per_tier: 2, alpha_linearity: 1.0}
  SYB:
    years: [2018, 2019]
    source: {kind: synthetic, seed: 11, x0: 13920, y0: 6170, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, k_range_urban: [2, 2], k_range_rural: [2, 2],
             scorer_steps: 4, per_tier: 2, alpha_linearity: 1.0}
"""
CONFIGURED = {"SYA|2016", "SYA|2017", "SYB|2018", "SYB|2019"}


@pytest.fixture
def registry_file(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(TWO_COUNTRIES))
    return path


def _defs(path, root):
    return build_definitions(load_countries(path), data_root=str(root / "data"), countries_file=str(path),
                             warehouse_path=str(root / "warehouse.duckdb"))


def test_only_configured_country_years_are_partition_keys(registry_file, tmp_path):
    defs = _defs(registry_file, tmp_path)
    seen = set()
    for asset in defs.assets:
        keys = set(asset.partitions_def.get_partition_keys())
        assert keys in ({"SYA", "SYB"}, CONFIGURED), asset.keys
        seen |= keys
    assert seen >= CONFIGURED and "SYB|2016" not in seen and "SYA|2018" not in seen
    assert split_country_year(country_year_key("SYB", 2018)) == ("SYB", 2018)


def test_every_cross_partition_read_maps_onto_valid_keys(registry_file, tmp_path):
    defs = _defs(registry_file, tmp_path)
    by_key = {k: a for a in defs.assets for k in a.keys}
    mapped = 0
    for asset in defs.assets:
        for spec in asset.specs:
            for dep in spec.deps:
                up = by_key[dep.asset_key].partitions_def
                if up != asset.partitions_def:  # country <-> country|year: a mapping is declared
                    assert isinstance(dep.partition_mapping, StaticPartitionMapping), (spec.key, dep.asset_key)
                if isinstance(dep.partition_mapping, StaticPartitionMapping):
                    mapped += 1
                    table = dep.partition_mapping._mapping  # noqa: SLF001 - public fields are not exposed
                    assert set(table) <= set(up.get_partition_keys())
                    assert set().union(*map(set, table.values())) <= set(asset.partitions_def.get_partition_keys())
    assert mapped > 10


def test_change_maps_read_the_previous_and_the_base_year(registry_file, tmp_path):
    p = make_partitions(load_countries(registry_file))
    mapping = p.with_previous_and_base("siscore_grid").partition_mapping
    assert set(mapping._mapping["SYB|2018"]) == {"SYB|2018", "SYB|2019"}  # noqa: SLF001
    assert set(mapping._mapping["SYB|2019"]) == {"SYB|2019"}  # noqa: SLF001


@pytest.mark.slow
@pytest.mark.xdist_group("backfill")
def test_backfill_of_every_partition_of_every_asset_succeeds(registry_file, tmp_path):
    defs = _defs(registry_file, tmp_path)
    instance = DagsterInstance.ephemeral()
    run_ids = materialize_all_partitions(defs, instance=instance, log=lambda _: None)
    waves = plan_waves(defs)
    assert len(run_ids) == sum(2 if w.kind == "country" else 4 for w in waves)
    for asset in defs.assets:
        for key in asset.keys:
            assert instance.get_materialized_partitions(key) == set(asset.partitions_def.get_partition_keys()), key
    assert instance.get_materialized_partitions(AssetKey("siscore_grid")) == CONFIGURED
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        years = conn.execute("SELECT DISTINCT country, year FROM siscore_grid ORDER BY ALL").fetchall()
    assert {f"{c}|{y}" for c, y in years} == CONFIGURED
