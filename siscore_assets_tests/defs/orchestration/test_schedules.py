"""The yearly refresh with a frozen clock: open-ended years grow with the clock; the January
tick requests the year that has just ended and catches up every earlier year never scored."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone

import pytest
from dagster import AssetMaterialization, build_schedule_context

from siscore_assets.core.countries import CountryConfigError, load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.orchestration.followup import FOLLOW_UP_TAG, RUNS_TAG, WAVE_TAG
from siscore_assets.defs.orchestration.schedules import SCHEDULE_NAME, TRIGGER, refresh_years
from siscore_assets_tests.fixtures.definitions import OPEN_ENDED_COUNTRIES, persistent_instance

COUNTRIES = (
    OPEN_ENDED_COUNTRIES
    + """\
  FIX:
    years: [2016, 2017]
    source: {kind: synthetic, seed: 11, x0: 13920, y0: 6170, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
"""
)
TICK = datetime(2027, 1, 15, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def countries(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(COUNTRIES))
    return path


def _tick(countries, tmp_path, loaded: date, when: datetime = TICK, scored=()):
    # persistent: the tick reads what was scored
    with persistent_instance() as instance:
        defs = build_definitions(
            load_countries(countries, today=loaded),
            data_root=str(tmp_path / "data"),
            countries_file=str(countries),
            warehouse_path=str(tmp_path / "w.duckdb"),
        )
        schedule = defs.resolve_schedule_def(SCHEDULE_NAME)
        for key in scored:  # years whose scores exist
            instance.report_runless_asset_event(
                AssetMaterialization(asset_key="siscore_grid", partition=key)
            )
        with build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        ) as context:  # closed here: its own instance is left before ours
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


def test_the_tick_refreshes_the_last_complete_year_of_open_ended_countries(countries):
    """What the schedule requests: the year that has just ended, and every earlier year never
    scored; a fixed list of years gets nothing."""
    assert refresh_years(str(countries), TICK, {"OPN|2024", "OPN|2025"}) == {"OPN": [2026]}
    assert refresh_years(str(countries), TICK, {"OPN|2024"}) == {"OPN": [2025, 2026]}
    assert refresh_years(str(countries), TICK) == {"OPN": [2024, 2025, 2026]}
    assert refresh_years(str(countries), TICK, {"FIX|2016"}) == {"OPN": [2024, 2025, 2026]}


@pytest.mark.parametrize(
    "bad", ["{from: 2030}", "{from: '2016'}", "{from: 2016, until: 2019}", "[]"]
)
def test_bad_open_ended_years_name_the_country(countries, bad):
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{from: 2024}", bad))
    with pytest.raises(CountryConfigError, match="country OPN: '?years"):
        load_countries(countries, today=date(2027, 1, 15))


def test_the_january_tick_asks_for_the_year_that_has_just_ended(countries, tmp_path):
    """On 15 January 2027 the year 2027 is two weeks old (a tile folder not delivered, a STAC
    search of two weeks of winter): the tick asks for 2026, complete."""
    defs, schedule, result = _tick(
        countries, tmp_path, loaded=date(2027, 1, 2), scored=["OPN|2024", "OPN|2025"]
    )
    assert [
        (r.partition_key, r.run_key, r.tags["siscore/trigger"]) for r in result.run_requests
    ] == [("OPN|2026", "OPN|2026@2027-01-15", TRIGGER)]
    tags = result.run_requests[0].tags  # one group: followed up once, after the last of them
    assert (tags[FOLLOW_UP_TAG], tags[WAVE_TAG], tags[RUNS_TAG]) == ("OPN@2027-01-15", "0", "1")
    assert schedule.job_name == "yearly_refresh"


def test_each_tick_catches_up_the_years_never_scored(countries, tmp_path):
    # 2024 was scored; 2025's tick was skipped (or its run failed): asked again with 2026
    _, _, result = _tick(countries, tmp_path, loaded=date(2027, 1, 2), scored=["OPN|2024"])
    assert [r.partition_key for r in result.run_requests] == ["OPN|2025", "OPN|2026"]
    assert {r.tags[RUNS_TAG] for r in result.run_requests} == {"2"}
    # a location up since before 2026 lacks OPN|2026: the tick says to reload it
    _, _, result = _tick(
        countries, tmp_path, loaded=date(2025, 12, 20), scored=["OPN|2024", "OPN|2025"]
    )
    assert not result.run_requests
    assert "OPN|2026" in result.skip_message and "reload the code location" in result.skip_message


def test_fixed_years_gain_nothing(countries, tmp_path):
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{from: 2024}", "[2024, 2025]"))
    _, _, result = _tick(countries, tmp_path, loaded=date(2027, 1, 2))
    assert not result.run_requests and "only open-ended years grow" in result.skip_message
