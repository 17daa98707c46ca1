"""The annotation kit asset and the sensor that reacts to exported POG files, on a hand-made
warehouse (clusters, members, patch stacks): no training needed, so this stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    materialize,
)

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.patches import save_stack
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.ranking.kit import KIT_FILE
from siscore_assets.defs.ranking.sensors import REFRESH_ASSETS, REFRESH_JOB, SENSOR_NAME
from siscore_assets_tests.conftest import TINY_COUNTRIES, select

pytestmark = pytest.mark.xdist_group("annotation_kit_defs")

CLUSTERS = [0, 1, 2, 3]  # inhabited; 4 is the uninhabited cluster


@pytest.fixture
def platform(tmp_path: Path) -> SimpleNamespace:
    countries = tmp_path / "countries.yaml"
    countries.write_text(TINY_COUNTRIES.replace("{missing}", str(tmp_path / "no_such_folder")))
    defs = build_definitions(load_countries(countries), data_root=str(tmp_path / "data"),
                             countries_file=str(countries), warehouse_path=str(tmp_path / "wh.duckdb"))
    wh, data = defs.resources["warehouse"], tmp_path / "data"
    rng = np.random.default_rng(1)
    members = []
    for year in (2016, 2017):
        tile_ids = [f"14/{13903 + i}/6163" for i in range(12)]
        status = ["ok"] * 11 + ["cloudy"]
        rows = np.cumsum([s == "ok" for s in status]) - 1
        patches = pd.DataFrame({"country": "SYN", "year": year, "tile_id": tile_ids, "status": status,
                                "image_row": np.where(np.array(status) == "ok", rows, -1),
                                "stack_path": str(data / "SYN" / "patches" / f"{year}.npy")})  # a legacy stack
        wh.write("patches", patches, {"country": "SYN", "year": year})
        save_stack(rng.integers(0, 255, (11, 16, 16, 3), dtype=np.uint8), data / "SYN" / "patches" / f"{year}.npy")
        members.append(pd.DataFrame({"country": "SYN", "year": year, "tile_id": tile_ids[:11],
                                     "cluster_id": [i % 5 for i in range(11)]}))
    wh.write("cluster_members", pd.concat(members), {"country": "SYN"})
    wh.write("clusters", pd.DataFrame({
        "country": "SYN", "cluster_id": [0, 1, 2, 3, 4],
        "cluster_group": ["urban", "urban", "rural", "rural", "uninhabited"], "n_tiles": [5, 5, 4, 4, 4],
    }), {"country": "SYN"})
    return SimpleNamespace(defs=defs, root=tmp_path, data=data, db=tmp_path / "wh.duckdb",
                           folder=data / "SYN" / "annotations", instance=DagsterInstance.ephemeral())


def _materialize(platform, names: list[str], partition: str = "SYN"):
    return materialize(list(platform.defs.assets), selection=select(*names),
                       partition_key=partition, resources=dict(platform.defs.resources),
                       instance=platform.instance, raise_on_error=False)


def _tick(platform, cursor: str | None):
    sensor = platform.defs.resolve_sensor_def(SENSOR_NAME)
    ctx = build_sensor_context(instance=platform.instance, cursor=cursor, definitions=platform.defs,
                               resources={"settings": platform.defs.resources["settings"]})
    result = sensor.evaluate_tick(ctx)
    return result.run_requests or [], result.cursor or cursor, result.skip_message


def _failure(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events
                     if e.is_step_failure and e.event_specific_data is not None)


def test_kit_asset_writes_one_self_contained_page(platform):
    result = _materialize(platform, ["annotation_kit"])
    assert result.success, _failure(result)
    path = platform.data / "SYN" / KIT_FILE
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    ids = [c["id"] for c in json.loads(page.split('id="kit-data">', 1)[1].split("</script>", 1)[0])["clusters"]]
    assert ids == CLUSTERS  # the uninhabited cluster is not ranked
    md = result.asset_materializations_for_node("annotation_kit")[0].metadata
    assert md["clusters"].value == 4 and md["images"].value == 18 and md["missing_images"].value == 0
    assert md["size_kb"].value > 0 and md["path"].value == str(path.resolve())
    assert "data:image/png;base64," in md["preview"].value
    # Same warehouse, same page.
    assert _materialize(platform, ["annotation_kit"]).success
    assert path.read_text(encoding="utf-8") == page


def test_kit_failure_names_the_problem_and_keeps_the_previous_page(platform):
    assert _materialize(platform, ["annotation_kit"]).success
    path = platform.data / "SYN" / KIT_FILE
    before = path.read_bytes()
    (platform.data / "SYN" / "patches" / "2017.npy").unlink()
    result = _materialize(platform, ["annotation_kit"])
    assert not result.success and "2017.npy" in _failure(result)
    assert path.read_bytes() == before
    result = _materialize(platform, ["annotation_kit"], partition="TWO")
    assert not result.success and "no clusters for TWO" in _failure(result)
    assert not (platform.data / "TWO" / KIT_FILE).exists()


def test_sensor_runs_the_pog_assets_once_per_change(platform):
    requests, cursor, skip = _tick(platform, None)
    assert requests == [] and "baseline" in skip
    platform.folder.mkdir(parents=True)
    (platform.folder / "eco1.pog").write_text("3=2>1>0\n")
    requests, cursor, _ = _tick(platform, cursor)
    assert len(requests) == 1
    req = requests[0]
    assert req.partition_key == "SYN" and req.job_name in (None, REFRESH_JOB)
    job = platform.defs.resolve_job_def(REFRESH_JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(REFRESH_ASSETS)
    # Nothing changed: nothing to run.  Same bytes rewritten: nothing to run.
    assert _tick(platform, cursor)[0] == []
    (platform.folder / "eco1.pog").write_text("3=2>1>0\n")
    assert _tick(platform, cursor)[0] == []
    # A second annotator: one run; its key differs from the first one's.
    (platform.folder / "sat2.pog").write_text("3>2=1>0\n")
    again, cursor, _ = _tick(platform, cursor)
    assert len(again) == 1 and again[0].run_key != req.run_key
    # The run it asks for really re-reads the folder.
    result = job.execute_in_process(partition_key="SYN", instance=platform.instance, raise_on_error=False)
    assert result.success, _failure(result)
    with duckdb.connect(str(platform.db), read_only=True) as conn:
        assert sorted(conn.execute("select annotator from annotator_pogs").fetchall()) == [("eco1",), ("sat2",)]


def test_sensor_ignores_simulated_files_and_unrelated_files(platform):
    platform.folder.mkdir(parents=True)
    _, cursor, _ = _tick(platform, None)
    (platform.folder / "sim1.pog").write_text("1>0\n")
    (platform.folder / ".simulated.json").write_text(json.dumps(["sim1"]))
    (platform.folder / "README.md").write_text("notes")
    assert _tick(platform, cursor)[0] == []


def test_sensor_waits_while_another_run_is_in_progress(platform):
    _, cursor, _ = _tick(platform, None)
    platform.folder.mkdir(parents=True)
    (platform.folder / "eco1.pog").write_text("1>0\n")
    platform.instance.add_run(DagsterRun(job_name="country_models", run_id="busy-run",
                                         status=DagsterRunStatus.STARTED))
    requests, waited, skip = _tick(platform, cursor)
    assert requests == [] and "busy-run" in skip and waited == cursor  # change kept for later
    platform.instance.report_run_canceled(platform.instance.get_run_by_id("busy-run"))
    assert len(_tick(platform, waited)[0]) == 1


def test_malformed_file_does_not_crash_the_sensor_and_the_run_names_file_line_col(platform):
    _, cursor, _ = _tick(platform, None)
    platform.folder.mkdir(parents=True)
    (platform.folder / "eco1.pog").write_text("3=2>1>0\n")
    requests, cursor, _ = _tick(platform, cursor)
    job = platform.defs.resolve_job_def(REFRESH_JOB)
    assert job.execute_in_process(partition_key="SYN", instance=platform.instance).success
    (platform.folder / "zz_bad.pog").write_text("3=2>>1\n")
    requests, cursor, _ = _tick(platform, cursor)
    assert len(requests) == 1 and requests[0].partition_key == "SYN"
    result = job.execute_in_process(partition_key="SYN", instance=platform.instance, raise_on_error=False)
    assert not result.success
    assert "zz_bad.pog:1:5:" in _failure(result)
    with duckdb.connect(str(platform.db), read_only=True) as conn:  # the earlier rows stay
        assert conn.execute("select annotator from annotator_pogs").fetchall() == [("eco1",)]


def test_sensor_result_is_a_skip_not_an_error_when_no_folder_exists(platform):
    requests, cursor, skip = _tick(platform, None)
    assert requests == [] and json.loads(cursor)["folders"] == {"NOANN": None, "SYN": None, "TWO": None}
    assert _tick(platform, cursor)[2] == "no annotation file changed"
