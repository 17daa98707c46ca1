"""The yearly refresh with a frozen clock: open-ended years grow with the clock, and the
schedule requests exactly the new year's partition; its success requests exactly the
country-level assets that read it."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone

import pytest
from dagster import AssetKey, DagsterInstance, SkipReason, build_schedule_context

from siscore_assets.core.countries import CountryConfigError, load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.orchestration.schedules import (
    SCHEDULE_NAME,
    TRIGGER,
    TRIGGER_TAG,
    dependents_request,
    new_years,
)

COUNTRIES = """
default: OPN
countries:
  OPN:
    years: {from: 2024}
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
  FIX:
    years: [2016, 2017]
    source: {kind: synthetic, seed: 11, x0: 13920, y0: 6170, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
"""
TICK = datetime(2027, 1, 15, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def countries(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(COUNTRIES))
    return path


def _tick(countries, tmp_path, loaded: date, when: datetime = TICK):
    defs = build_definitions(
        load_countries(countries, today=loaded),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "w.duckdb"),
    )
    schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        )
        return defs, schedule, schedule.evaluate_tick(context)


def test_open_ended_years_end_at_the_clock(countries):
    assert load_countries(countries, today=date(2026, 12, 31)).get("OPN").years == (
        2024,
        2025,
        2026,
    )
    assert load_countries(countries, today=date(2027, 1, 1)).get("OPN").years == (
        2024,
        2025,
        2026,
        2027,
    )
    assert load_countries(countries, today=date(2027, 1, 1)).get("FIX").years == (2016, 2017)
    assert new_years(str(countries), TICK) == {"OPN": [2027]}


@pytest.mark.parametrize(
    "bad", ["{from: 2030}", "{from: '2016'}", "{from: 2016, until: 2019}", "[]"]
)
def test_bad_open_ended_years_name_the_country(countries, bad):
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{from: 2024}", bad))
    with pytest.raises(CountryConfigError, match="country OPN: '?years"):
        load_countries(countries, today=date(2027, 1, 15))


def test_schedule_requests_exactly_the_new_year(countries, tmp_path):
    defs, schedule, result = _tick(countries, tmp_path, loaded=date(2027, 1, 2))
    assert [(r.partition_key, r.run_key, r.tags[TRIGGER_TAG]) for r in result.run_requests] == [
        ("OPN|2027", "OPN|2027@2027-01-15", TRIGGER)
    ]
    assert schedule.job_name == "yearly_refresh"
    job = defs.resolve_job_def("yearly_refresh")
    assert "OPN|2027" in job.partitions_def.get_partition_keys()
    assert {AssetKey("siscore_change"), AssetKey("siscore_grid")} <= set(
        job.asset_layer.selected_asset_keys
    )


def test_a_location_loaded_before_the_new_year_skips_with_a_reload_hint(countries, tmp_path):
    _, _, result = _tick(countries, tmp_path, loaded=date(2026, 12, 20))
    assert not result.run_requests
    assert "OPN|2027" in result.skip_message and "reload the code location" in result.skip_message


def test_fixed_years_gain_nothing(countries, tmp_path):
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{from: 2024}", "[2024, 2025]"))
    _, _, result = _tick(countries, tmp_path, loaded=date(2027, 1, 2))
    assert not result.run_requests and "no country gained a year" in result.skip_message


def test_the_new_years_success_requests_exactly_the_country_level_dependents(countries, tmp_path):
    defs, _, _ = _tick(countries, tmp_path, loaded=date(2027, 1, 2))
    sensor = defs.resolve_sensor_def("yearly_refresh_dependents")
    assert sensor.job_name == "country_models"
    dependents = [
        AssetKey(name)
        for name in (
            "census_link",
            "development_regression",
            "district_indicators",
            "indicator_gini",
            "indicator_splits",
            "indicator_tiles",
            "regression_panel",
            "scorer_gradcam",
            "stac_catalog",
            "validation_change",
            "validation_internal",
            "web_map",
        )
    ]
    request = dependents_request({TRIGGER_TAG: TRIGGER}, "OPN|2027", "r1", dependents)
    assert (request.partition_key, request.run_key, request.asset_selection) == (
        "OPN",
        "dependents-of-r1",
        dependents,
    )
    assert (
        dependents_request({}, "OPN|2027", "r2", dependents) is None
    )  # a run someone else started
    assert f"({', '.join(k.to_user_string() for k in dependents)})" in sensor.description
    assert not isinstance(request, SkipReason)
