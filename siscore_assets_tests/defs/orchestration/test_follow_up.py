"""The follow-up of yearly runs: after ANY successful yearly run (the schedule's, the imagery
sensor's, one by hand), every scored year's scores and what reads them, wave after wave, each
wave once the previous one has wholly succeeded."""

from __future__ import annotations

import textwrap
from datetime import date

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterEvent,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    SkipReason,
    build_run_status_sensor_context,
)
from dagster._core.storage.tags import BACKFILL_ID_TAG, PARTITION_NAME_TAG
from dagster._core.utils import make_new_run_id

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets_tests.fixtures.definitions import OPEN_ENDED_COUNTRIES, persistent_instance

SENSOR = "yearly_refresh_dependents"
COUNTRIES = OPEN_ENDED_COUNTRIES
SCORED = ["OPN|2024", "OPN|2025", "OPN|2026"]


@pytest.fixture
def world(tmp_path):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES))
    with persistent_instance() as instance:
        defs = build_definitions(
            load_countries(countries, today=date(2027, 1, 20)),
            data_root=str(tmp_path / "data"),
            countries_file=str(countries),
            warehouse_path=str(tmp_path / "w.duckdb"),
        )
        for key in SCORED:  # 2027 has no scores yet
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key="siscore_grid", partition=key)
            )
        yield defs, instance


def _run(instance, job, partition, tags=None, status=DagsterRunStatus.SUCCESS, selection=None):
    run = DagsterRun(
        job_name=job,
        run_id=make_new_run_id(),
        status=status,
        tags={PARTITION_NAME_TAG: partition, **(tags or {})},
        asset_selection=selection,
    )
    instance.add_run(run)
    return run


def _succeeded(world, run):
    defs, instance = world
    event = DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    context = build_run_status_sensor_context(SENSOR, event, instance, run)
    return defs.resolve_sensor_def(SENSOR)(context)


def _done(world, requests, status=DagsterRunStatus.SUCCESS):
    """The requested runs, as the daemon would record them (all with ``status``)."""
    _, instance = world
    return [
        _run(instance, r.job_name, r.partition_key, r.tags, status, set(r.asset_selection))
        for r in requests
    ]


def test_any_yearly_run_is_followed_by_every_scored_years_scores_and_readers(world):
    _, instance = world
    # the imagery sensor's run of a late-delivered year, not the schedule's
    origin = _run(instance, "yearly_refresh", "OPN|2026", {"siscore/trigger": "imagery_files"})
    wave1 = _succeeded(world, origin)
    assert [r.partition_key for r in wave1] == SCORED  # every year with scores, not only 2026
    assert {r.job_name for r in wave1} == {"yearly_refresh"}
    assert AssetKey("siscore_grid") in wave1[0].asset_selection
    assert AssetKey("patches") not in wave1[0].asset_selection  # the imagery is not re-read

    first, second, third = (
        _done(world, wave1[:1])
        + _done(world, wave1[1:2])
        + _done(world, wave1[2:], DagsterRunStatus.STARTED)
    )
    waiting = _succeeded(world, first)
    assert isinstance(waiting, SkipReason) and "2/3" in waiting.skip_message
    third = _done(world, wave1[2:])[0]  # the last one ends
    wave2 = _succeeded(world, third)
    assert [(r.job_name, r.partition_key) for r in wave2] == [("country_models", "OPN")]
    assert {AssetKey("development_regression"), AssetKey("census_link")} <= set(
        wave2[0].asset_selection
    )
    wave3 = _succeeded(world, _done(world, wave2)[0])  # change maps: read census_link
    assert [r.partition_key for r in wave3] == SCORED
    assert set(wave3[0].asset_selection) == {
        AssetKey("siscore_change"),
        AssetKey("change_raster_files"),
    }
    runs3 = _done(world, wave3)
    wave4 = _succeeded(world, runs3[-1])
    assert set(wave4[0].asset_selection) == {AssetKey("web_map"), AssetKey("stac_catalog")}
    end = _succeeded(world, _done(world, wave4)[0])
    assert isinstance(end, SkipReason) and "done" in end.skip_message


def test_a_failed_wave_stops_the_follow_up(world):
    _, instance = world
    wave1 = _succeeded(world, _run(instance, "yearly_refresh", "OPN|2026"))
    ok = _done(world, wave1[:2])
    _done(world, wave1[2:], DagsterRunStatus.FAILURE)
    stopped = _succeeded(world, ok[0])
    assert isinstance(stopped, SkipReason) and "stopped" in stopped.skip_message


def test_the_schedules_years_are_followed_up_once(world):
    _, instance = world
    group = {
        "siscore/follow_up": "OPN@2027-01-15",
        "siscore/follow_up_wave": "0",
        "siscore/follow_up_runs": "2",
    }
    first = _run(instance, "yearly_refresh", "OPN|2025", group)
    _run(instance, "yearly_refresh", "OPN|2026", group, DagsterRunStatus.STARTED)
    assert isinstance(_succeeded(world, first), SkipReason)  # waits for 2026
    last = _run(instance, "yearly_refresh", "OPN|2026", group)
    wave1 = _succeeded(world, last)
    assert [r.partition_key for r in wave1] == SCORED
    assert wave1[0].run_key == "follow-up:OPN@2027-01-15:1:OPN|2024"


def test_runs_that_do_not_move_the_scores_start_nothing(world):
    _, instance = world
    subset = _run(instance, "yearly_refresh", "OPN|2026", selection={AssetKey("validation_grid")})
    assert isinstance(_succeeded(world, subset), SkipReason)
    backfill = _run(instance, "yearly_refresh", "OPN|2026", {BACKFILL_ID_TAG: "b1"})
    skipped = _succeeded(world, backfill)
    assert isinstance(skipped, SkipReason) and "backfill b1" in skipped.skip_message
    by_hand = _run(instance, "country_models", "OPN")
    assert isinstance(_succeeded(world, by_hand), SkipReason)
