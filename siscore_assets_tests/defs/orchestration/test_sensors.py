"""The imagery sensor: its first tick records what is there; a new year folder (or a changed
file) of a configured country-year requests exactly that partition's yearly refresh."""

from __future__ import annotations

import json
import textwrap

from dagster import build_sensor_context

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.resources import SiscoreSettings
from siscore_assets.defs.orchestration.sensors import SENSOR_NAME

COUNTRIES = """
default: TFC
countries:
  TFC:
    years: [2016, 2017]
    source: {kind: tile_folder, root: "{root}"}
  SYN:
    years: [2016]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 6, ny: 6, tile_px: 32,
             granule_tiles: 6}
"""


def _tick(sensor, settings, cursor):
    result = sensor(build_sensor_context(cursor=cursor, resources={"settings": settings}))
    return result, result.cursor


def test_new_imagery_of_a_configured_year_starts_its_refresh(tmp_path):
    root = tmp_path / "sample"
    (root / "tiles" / "2016").mkdir(parents=True)
    (root / "tiles" / "2016" / "6259_13990.png").write_bytes(b"png")
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(COUNTRIES).replace("{root}", str(root)))
    defs = build_definitions(
        load_countries(path),
        data_root=str(tmp_path / "data"),
        countries_file=str(path),
        warehouse_path=str(tmp_path / "w.duckdb"),
    )
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.job_name == "yearly_refresh"
    settings = SiscoreSettings(data_root=str(tmp_path / "data"), countries_file=str(path))

    result, cursor = _tick(sensor, settings, None)
    assert not result.run_requests and "baseline" in result.skip_reason.skip_message
    assert set(json.loads(cursor)) == {"TFC|2016", "TFC|2017"}  # synthetic imagery is not watched

    result, cursor = _tick(sensor, settings, cursor)
    assert not result.run_requests

    (root / "tiles" / "2017").mkdir()
    (root / "tiles" / "2017" / "6259_13990.png").write_bytes(b"png")
    (root / "tiles" / "2018").mkdir()  # not a configured year: ignored
    (root / "tiles" / "2018" / "6259_13990.png").write_bytes(b"png")
    result, cursor = _tick(sensor, settings, cursor)
    assert [(r.partition_key, r.tags["siscore/trigger"]) for r in result.run_requests] == [
        ("TFC|2017", "imagery_files")
    ]

    result, cursor = _tick(sensor, settings, cursor)
    assert not result.run_requests
    (root / "tiles" / "2016" / "6259_13990.png").write_bytes(b"a replaced tile")
    result, _ = _tick(sensor, settings, cursor)
    assert [r.partition_key for r in result.run_requests] == ["TFC|2016"]


def test_a_year_the_loaded_definitions_lack_waits_for_a_reload(tmp_path):
    """The location loaded in December; January's folder arrives before a reload: no request
    for a partition that does not exist (the tick said to reload), and after the reload the
    year is still new."""
    from datetime import date

    root = tmp_path / "sample"
    (root / "tiles" / "2025").mkdir(parents=True)
    (root / "tiles" / "2025" / "6259_13990.png").write_bytes(b"png")
    path = tmp_path / "countries.yaml"
    path.write_text(
        textwrap.dedent(COUNTRIES)
        .replace("[2016, 2017]", "{from: 2025}")
        .replace("{root}", str(root))
    )
    settings = SiscoreSettings(data_root=str(tmp_path / "data"), countries_file=str(path))

    def sensor(loaded: date):
        defs = build_definitions(
            load_countries(path, today=loaded),
            data_root=str(tmp_path / "data"),
            countries_file=str(path),
            warehouse_path=str(tmp_path / "w.duckdb"),
        )
        return defs.resolve_sensor_def(SENSOR_NAME)

    december = sensor(date(2025, 12, 20))
    result, cursor = _tick(december, settings, None)
    (root / "tiles" / str(date.today().year)).mkdir()  # the countries file now runs to today
    (root / "tiles" / str(date.today().year) / "6259_13990.png").write_bytes(b"png")
    new_key = f"TFC|{date.today().year}"
    result, cursor = _tick(december, settings, cursor)
    assert not result.run_requests
    assert new_key in result.skip_reason.skip_message
    assert "reload the code location" in result.skip_reason.skip_message
    result, _ = _tick(sensor(date.today()), settings, cursor)
    assert [r.partition_key for r in result.run_requests] == [new_key]
    assert result.run_requests[0].tags["siscore/follow_up_runs"] == "1"
