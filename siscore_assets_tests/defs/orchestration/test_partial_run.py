"""`siscore run --years Y`: Y's yearly assets, the scores and what reads them for every year
that has scores (each year's scores read every year), and the country-level assets that are
not learned models; the models are kept unless `--refit` (or never materialised).  A whole run
is unchanged.  What runs is recorded by a stand-in for the partition run."""

from __future__ import annotations

import textwrap
from concurrent.futures import Future

import pytest
from dagster import AssetMaterialization, DagsterInstance
from typer.testing import CliRunner

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import ANNOTATORS
from siscore_assets.defs.orchestration import runner
from siscore_assets.defs.orchestration.scope import Scope
from siscore_assets_tests.conftest import TINY_COUNTRIES

MODELS = {
    "pretrain_set",
    "habitation_model",
    "clusters",
    "cluster_members",
    "annotation_inputs",
    "guided_pogs",
    "ensemble_pog",
    "scorer",
    "feature_ranker",
    "ordinal_ranker",
    "annotator_pogs",
}


@pytest.fixture
def world(tmp_path, monkeypatch):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(TINY_COUNTRIES).replace("{missing}", str(tmp_path)))
    defs = build_definitions(
        load_countries(countries),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "w.duckdb"),
    )
    instance = DagsterInstance.ephemeral()
    ran: list[tuple[str, tuple[str, ...]]] = []

    def run_one(instance, target, assets, resources, wave, number, key, pool, verbose=False):
        ran.append((key, tuple(wave.names)))
        done: Future = Future()
        done.set_result(("no-run", True))
        return done

    monkeypatch.setattr(runner, "_run_one", run_one)
    return defs, instance, ran


def _materialised_before(defs, instance):
    """Everything of SYN materialised once (both years scored, one annotator)."""
    instance.add_dynamic_partitions(ANNOTATORS, ["SYN|a1"])
    for a in defs.assets:
        keys = a.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        for key in keys:
            if key.startswith("SYN"):
                for k in a.keys:
                    instance.report_runless_asset_event(AssetMaterialization(k, partition=key))


def _by_partition(ran):
    out: dict[str, set[str]] = {}
    for key, names in ran:
        out.setdefault(key, set()).update(names)
    return out


def test_a_run_of_one_year_keeps_the_models_and_refreshes_every_years_scores(world):
    defs, instance, ran = world
    _materialised_before(defs, instance)
    runner.materialize_country(
        defs, "SYN", [2017], instance=instance, log=lambda _: None, scope=Scope(partial=True)
    )
    got = _by_partition(ran)
    assert not MODELS & got["SYN"]  # nothing re-fitted, the clusters keep their numbers
    assert {"development_regression", "web_map", "covariates", "imported_scores"} <= got["SYN"]
    assert {"granules", "patches", "habitation", "siscore_grid", "siscore_change"} <= got[
        "SYN|2017"
    ]
    # 2016's scores read 2017's imagery: refreshed with what reads them, its imagery is not
    assert {"siscore_grid", "validation_grid", "siscore_change"} <= got["SYN|2016"]
    assert not {"granules", "patches", "habitation", "feature_baseline"} & got["SYN|2016"]
    assert "SYN|a1" not in got

    ran.clear()
    runner.materialize_country(
        defs,
        "SYN",
        [2017],
        instance=instance,
        log=lambda _: None,
        scope=Scope(partial=True, refit=True),
    )
    got = _by_partition(ran)
    assert MODELS - {"annotator_pogs"} <= got["SYN"] and "annotator_pogs" in got["SYN|a1"]


def test_a_first_run_of_one_year_runs_the_models(world):
    """A new country's first `--years` run (docs/new-country.md): nothing to keep."""
    defs, instance, ran = world
    instance.add_dynamic_partitions(ANNOTATORS, ["SYN|a1"])
    runner.materialize_country(
        defs, "SYN", [2016], instance=instance, log=lambda _: None, scope=Scope(partial=True)
    )
    got = _by_partition(ran)
    assert MODELS - {"annotator_pogs"} <= got["SYN"] and "SYN|2017" not in got


def test_a_whole_run_is_unchanged(world):
    defs, instance, ran = world
    _materialised_before(defs, instance)
    runner.materialize_country(defs, "SYN", [2016, 2017], instance=instance, log=lambda _: None)
    got = _by_partition(ran)
    everything = {n for w in runner.plan_waves(defs) if w.kind != runner.ANNOTATOR for n in w.names}
    assert got["SYN"] | got["SYN|2016"] == everything == got["SYN"] | got["SYN|2017"]


def test_cli_years_is_a_partial_run_and_refit_refits(tiny_countries, tmp_path, monkeypatch):
    from siscore_assets import cli

    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()
    scopes = []

    def fake(defs, code, years, **kwargs):
        scopes.append((list(years), kwargs.get("scope")))
        raise runner.RunFailed(["stop here"])

    monkeypatch.setattr(runner, "materialize_country", fake)
    for args in (["--years", "2017"], ["--years", "2017", "--refit"], []):
        CliRunner().invoke(cli.app, ["run", "--country", "SYN", *args])
    assert scopes == [
        ([2017], Scope(partial=True)),
        ([2017], Scope(partial=True, refit=True)),
        ([2016, 2017], Scope()),
    ]
