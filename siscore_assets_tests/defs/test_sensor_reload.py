"""A country added to the countries file after the code location loaded: the label and the
annotation sensors request nothing for it (its partition does not exist yet), say to reload
the code location, and pick its files up after the reload."""

from __future__ import annotations

from dagster import build_sensor_context

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.ranking.labels import LABEL_SENSOR
from siscore_assets.defs.ranking.sensors import SENSOR_NAME as ANNOTATION_SENSOR
from siscore_assets_tests.fixtures.definitions import persistent_instance

ONE = """
default: SYN
countries:
  SYN:
    years: [2016]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
"""
NEW = """
  NEW:
    years: [2016]
    annotations: {folder}
    source: {kind: synthetic, seed: 5, x0: 13920, y0: 6170, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
"""


def _tick(defs, name, instance, cursor):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"settings": defs.resources["settings"]},
        definitions=defs,
    )
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def test_sensors_leave_a_country_added_after_loading_for_a_reload(tmp_path):
    countries = tmp_path / "countries.yaml"
    countries.write_text(ONE)
    folder = tmp_path / "new_annotations"

    def defs_now():
        return build_definitions(
            load_countries(countries),
            data_root=str(tmp_path / "data"),
            countries_file=str(countries),
            warehouse_path=str(tmp_path / "w.duckdb"),
        )

    with persistent_instance() as instance:
        loaded = defs_now()
        cursors = {}
        for name in (LABEL_SENSOR, ANNOTATION_SENSOR):  # baselines, as the daemon records them
            tick = _tick(loaded, name, instance, None)
            for request in tick.dynamic_partitions_requests:
                instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            cursors[name] = tick.cursor
        # NEW is added to the file, with label exports and an annotator's POG, before a reload
        countries.write_text(ONE.rstrip("\n") + NEW.replace("{folder}", str(folder)))
        exports = tmp_path / "data" / "NEW" / "labels"
        exports.mkdir(parents=True)
        (exports / "ann.labels.csv").write_text("tile_id,year,label\n")
        folder.mkdir()
        (folder / "annotator_1.pog").write_text("1 < 2\n")

        labels = _tick(loaded, LABEL_SENSOR, instance, cursors[LABEL_SENSOR])
        assert not labels.run_requests
        assert "NEW" in labels.skip_message and "reload the code location" in labels.skip_message
        annotations = _tick(loaded, ANNOTATION_SENSOR, instance, cursors[ANNOTATION_SENSOR])
        assert not annotations.run_requests
        added = [k for r in annotations.dynamic_partitions_requests for k in r.partition_keys]
        assert not [k for k in added if k.startswith("NEW|")]
        assert "NEW" in annotations.skip_message
        assert "reload the code location" in annotations.skip_message

        reloaded = defs_now()  # after the reload the exports are still new
        labels = _tick(reloaded, LABEL_SENSOR, instance, labels.cursor)
        assert [r.partition_key for r in labels.run_requests] == ["NEW"]
