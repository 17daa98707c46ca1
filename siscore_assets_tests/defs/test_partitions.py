"""Only configured country-years exist as partition keys, every cross-partition read is a
declared dependency, and a backfill of every partition of every asset succeeds on a registry
whose countries have different year sets."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest
from dagster import (
    AllPartitionMapping,
    AssetKey,
    DynamicPartitionsDefinition,
    IdentityPartitionMapping,
    StaticPartitionMapping,
    build_sensor_context,
)

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import (
    ANNOTATORS,
    country_year_key,
    make_partitions,
    split_country_year,
)
from siscore_assets.defs.orchestration.runner import plan_waves
from siscore_assets.defs.ranking.sensors import SENSOR_NAME

TWO_COUNTRIES = """
default: SYA
countries:
  SYA:
    years: [2016, 2017]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, k_range_urban: [2, 2],
             k_range_rural: [2, 2], scorer_steps: 4, per_tier: 2, alpha_linearity: 1.0}
  SYB:
    years: [2018, 2019]
    source: {kind: synthetic, seed: 11, x0: 13920, y0: 6170, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
    models: {seed: 0, input_px: 32, habitation_epochs: 2, k_range_urban: [2, 2],
             k_range_rural: [2, 2], scorer_steps: 4, per_tier: 2, alpha_linearity: 1.0}
"""
CONFIGURED = {"SYA|2016", "SYA|2017", "SYB|2018", "SYB|2019"}


@pytest.fixture
def registry_file(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(TWO_COUNTRIES))
    return path


def _defs(path, root):
    return build_definitions(
        load_countries(path),
        data_root=str(root / "data"),
        countries_file=str(path),
        warehouse_path=str(root / "warehouse.duckdb"),
    )


def test_only_configured_country_years_are_partition_keys(registry_file, tmp_path):
    defs = _defs(registry_file, tmp_path)
    seen = set()
    for asset in defs.assets:
        if isinstance(asset.partitions_def, DynamicPartitionsDefinition):  # added at run time
            assert asset.partitions_def.name == ANNOTATORS, asset.keys
            continue
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
                if ANNOTATORS in (
                    getattr(up, "name", None),
                    getattr(asset.partitions_def, "name", None),
                ):
                    # country <-> country|annotator: all partitions, read for one country
                    assert up != asset.partitions_def and isinstance(
                        dep.partition_mapping, AllPartitionMapping
                    )
                    continue
                if up != asset.partitions_def:  # country <-> country|year: a mapping is declared
                    assert isinstance(dep.partition_mapping, StaticPartitionMapping), (
                        spec.key,
                        dep.asset_key,
                    )
                if isinstance(dep.partition_mapping, StaticPartitionMapping):
                    mapped += 1
                    table = dep.partition_mapping._mapping  # noqa: SLF001 - public fields are not exposed
                    assert set(table) <= set(up.get_partition_keys())
                    assert set().union(*map(set, table.values())) <= set(
                        asset.partitions_def.get_partition_keys()
                    )
    assert mapped > 10


def test_change_maps_read_the_previous_and_the_base_year(registry_file, tmp_path):
    p = make_partitions(load_countries(registry_file))
    mapping = p.with_previous_and_base("siscore_grid").partition_mapping
    assert set(mapping._mapping["SYB|2018"]) == {"SYB|2018", "SYB|2019"}  # noqa: SLF001
    assert set(mapping._mapping["SYB|2019"]) == {"SYB|2019"}  # noqa: SLF001


@pytest.mark.slow
@pytest.mark.xdist_group("backfill")
def test_backfill_of_every_partition_of_every_asset_succeeds(registry_file, tmp_path, monkeypatch):
    """A real Dagster asset backfill of every partition of every asset (what "Materialize all"
    in the UI submits), driven by the backfill daemon's own iteration, with runs launched in
    this process.  Dagster plans the runs from the declared partition mappings alone."""
    import logging
    import time

    from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.utils import make_new_backfill_id
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    monkeypatch.setenv("SISCORE_COUNTRIES", str(registry_file))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("SISCORE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    # Steps one after another in the run's process: 24 runs of forked step processes would only
    # add time here (the multiprocess executor is exercised by test_ui and `siscore run`).
    monkeypatch.setenv("SISCORE_EXECUTOR", "in_process")
    defs = _defs(registry_file, tmp_path)
    overrides = {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "DefaultRunCoordinator",
        },
        "run_launcher": {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        },
    }
    target = ModuleTarget(
        module_name="siscore_assets_tests.defs.backfill_location",
        attribute="defs",
        working_directory=str(Path(__file__).resolve().parents[2]),
        location_name="siscore",
    )
    with (
        instance_for_test(overrides=overrides) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        # the daemon's first tick of the annotation sensor registers each country's annotators
        tick = defs.resolve_sensor_def(SENSOR_NAME).evaluate_tick(
            build_sensor_context(
                instance=instance,
                instance_ref=instance.get_ref(),
                definitions=defs,
                resources={"settings": defs.resources["settings"]},
            )
        )
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        assert len(instance.get_dynamic_partitions(ANNOTATORS)) == 6  # 3 simulated annotators each
        backfill_id = make_new_backfill_id()
        with partition_loading_context(dynamic_partitions_store=instance):  # "all" includes them
            everything = AssetGraphSubset.all(defs.resolve_asset_graph())
        instance.add_backfill(
            PartitionBackfill.from_asset_graph_subset(
                backfill_id=backfill_id,
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                asset_graph_subset=everything,
                title="all partitions",
                description=None,
                run_config=None,
            )
        )
        for _ in range(60):
            list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
            backfill = instance.get_backfill(backfill_id)
            if backfill.status != BulkActionStatus.REQUESTED:
                break
        assert backfill.status == BulkActionStatus.COMPLETED_SUCCESS, backfill.status
        runs = instance.get_runs()
        assert runs and all(r.status.value == "SUCCESS" for r in runs)
        for asset in defs.assets:
            for key in asset.keys:
                assert instance.get_materialized_partitions(key) == set(
                    asset.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
                ), key
        assert instance.get_materialized_partitions(AssetKey("siscore_grid")) == CONFIGURED
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        years = conn.execute(
            "SELECT DISTINCT country, year FROM siscore_grid ORDER BY ALL"
        ).fetchall()
    assert {f"{c}|{y}" for c, y in years} == CONFIGURED


def test_siscore_run_waves_respect_every_declared_dependency(registry_file, tmp_path):
    defs = _defs(registry_file, tmp_path)
    done: set = set()
    by_key = {k: a for a in defs.assets for k in a.keys}
    for wave in plan_waves(defs):
        for key in wave.keys:
            deps = [d for spec in by_key[key].specs for d in spec.deps]
            ups = {d.asset_key for d in deps} - set(by_key[key].keys)
            assert ups <= done | set(wave.keys), (key, ups - done)
            # another partition's rows (the previous year's scores) come from an earlier wave:
            # a wave's yearly runs go side by side
            across = {
                d.asset_key
                for d in deps
                if not isinstance(d.partition_mapping, (type(None), IdentityPartitionMapping))
            } - set(by_key[key].keys)
            assert across <= done, (key, across - done)
        done |= set(wave.keys)
    assert done == set(by_key)
    change = next(w for w in plan_waves(defs) if AssetKey("siscore_change") in w.keys)
    assert AssetKey("siscore_grid") not in change.keys
