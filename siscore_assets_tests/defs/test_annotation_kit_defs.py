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
    AddDynamicPartitionsRequest,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.patches import save_stack
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import ANNOTATORS
from siscore_assets.defs.ranking.kit import KIT_FILE
from siscore_assets.defs.ranking.sensors import (
    ANNOTATOR_ASSETS,
    ANNOTATOR_JOB,
    REFRESH_ASSETS,
    REFRESH_JOB,
    SENSOR_NAME,
)
from siscore_assets_tests.conftest import TINY_COUNTRIES, select

pytestmark = pytest.mark.xdist_group("annotation_kit_defs")

CLUSTERS = [0, 1, 2, 3]  # inhabited; 4 is the uninhabited cluster


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def platform(tmp_path: Path) -> SimpleNamespace:
    countries = tmp_path / "countries.yaml"
    countries.write_text(TINY_COUNTRIES.replace("{missing}", str(tmp_path / "no_such_folder")))
    defs = build_definitions(
        load_countries(countries),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "wh.duckdb"),
    )
    wh, data = defs.resources["warehouse"], tmp_path / "data"
    rng = np.random.default_rng(1)
    members = []
    for year in (2016, 2017):
        tile_ids = [f"14/{13903 + i}/6163" for i in range(12)]
        status = ["ok"] * 11 + ["cloudy"]
        rows = np.cumsum([s == "ok" for s in status]) - 1
        patches = pd.DataFrame(
            {
                "country": "SYN",
                "year": year,
                "tile_id": tile_ids,
                "status": status,
                "image_row": np.where(np.array(status) == "ok", rows, -1),
                "stack_path": str(data / "SYN" / "patches" / f"{year}.npy"),
            }
        )  # a legacy stack
        wh.write("patches", patches, {"country": "SYN", "year": year})
        save_stack(
            rng.integers(0, 255, (11, 16, 16, 3), dtype=np.uint8),
            data / "SYN" / "patches" / f"{year}.npy",
        )
        members.append(
            pd.DataFrame(
                {
                    "country": "SYN",
                    "year": year,
                    "tile_id": tile_ids[:11],
                    "cluster_id": [i % 5 for i in range(11)],
                }
            )
        )
    wh.write("cluster_members", pd.concat(members), {"country": "SYN"})
    wh.write(
        "clusters",
        pd.DataFrame(
            {
                "country": "SYN",
                "cluster_id": [0, 1, 2, 3, 4],
                "cluster_group": ["urban", "urban", "rural", "rural", "uninhabited"],
                "n_tiles": [5, 5, 4, 4, 4],
            }
        ),
        {"country": "SYN"},
    )
    return SimpleNamespace(
        defs=defs,
        root=tmp_path,
        data=data,
        db=tmp_path / "wh.duckdb",
        folder=data / "SYN" / "annotations",
        # persistent: a sensor resolves the partitions it adds through the instance's ref
        instance=DagsterInstance.local_temp(str(_mkdir(tmp_path / "dagster_home"))),
    )


def _materialize(platform, names: list[str], partition: str = "SYN"):
    return materialize(
        list(platform.defs.assets),
        selection=select(*names),
        partition_key=partition,
        resources=dict(platform.defs.resources),
        instance=platform.instance,
        raise_on_error=False,
    )


def _tick(platform, cursor: str | None):
    sensor = platform.defs.resolve_sensor_def(SENSOR_NAME)
    ctx = build_sensor_context(
        instance=platform.instance,
        instance_ref=platform.instance.get_ref(),
        cursor=cursor,
        definitions=platform.defs,
        resources={"settings": platform.defs.resources["settings"]},
    )
    result = sensor.evaluate_tick(ctx)
    for request in result.dynamic_partitions_requests or []:  # what the daemon does with them
        if isinstance(request, AddDynamicPartitionsRequest):
            platform.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        else:
            for key in request.partition_keys:
                platform.instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result.run_requests or [], result.cursor or cursor, result.skip_message


def _failure(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data is not None
    )


def test_kit_asset_writes_one_self_contained_page(platform):
    result = _materialize(platform, ["annotation_kit"])
    assert result.success, _failure(result)
    path = platform.data / "SYN" / KIT_FILE
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    ids = [
        c["id"]
        for c in json.loads(page.split('id="kit-data">', 1)[1].split("</script>", 1)[0])["clusters"]
    ]
    assert ids == CLUSTERS  # the uninhabited cluster is not ranked
    md = result.asset_materializations_for_node("annotation_kit")[0].metadata
    assert (
        md["clusters"].value == 4 and md["images"].value == 18 and md["missing_images"].value == 0
    )
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


def _run(platform, request):
    """What the daemon does with a sensor's run request: the job, the partition, the tags."""
    job = platform.defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        partition_key=request.partition_key,
        instance=platform.instance,
        tags=dict(request.tags),
        raise_on_error=False,
    )


def _stored(platform, table: str = "annotator_pogs") -> list[tuple]:
    with duckdb.connect(str(platform.db), read_only=True) as conn:
        return sorted(conn.execute(f"select annotator from {table}").fetchall())


@pytest.fixture
def human_folder(platform) -> Path:
    """NOANN's annotation folder (a configured, human one) made to exist, with clusters to rank."""
    folder = platform.root / "no_such_folder"
    folder.mkdir()
    platform.defs.resources["warehouse"].write(
        "clusters",
        pd.DataFrame(
            {
                "country": "NOANN",
                "cluster_id": [0, 1, 2, 3, 4],
                "cluster_group": ["urban", "urban", "rural", "rural", "uninhabited"],
                "n_tiles": [5, 5, 4, 4, 4],
            }
        ),
        {"country": "NOANN"},
    )
    return folder


def test_sensor_runs_one_annotator_partition_per_changed_file_then_the_ensemble(
    platform, human_folder
):
    requests, cursor, skip = _tick(platform, None)
    assert requests == [] and "baseline" in skip
    # SYN's simulated annotators are registered from the start (their names are known), no run
    simulated = set(platform.instance.get_dynamic_partitions(ANNOTATORS))
    assert len(simulated) == 5 and all(k.startswith("SYN|") for k in simulated)
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    requests, cursor, _ = _tick(platform, cursor)
    assert [(r.job_name, r.partition_key) for r in requests] == [(ANNOTATOR_JOB, "NOANN|eco1")]
    assert set(platform.instance.get_dynamic_partitions(ANNOTATORS)) == simulated | {"NOANN|eco1"}
    job = platform.defs.resolve_job_def(ANNOTATOR_JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(
        ANNOTATOR_ASSETS
    )
    # The ensemble waits for the annotator's run, then follows it.
    assert _tick(platform, cursor)[0] == []
    assert _run(platform, requests[0]).success
    ensemble, cursor, _ = _tick(platform, cursor)
    assert [(r.job_name, r.partition_key) for r in ensemble] == [(REFRESH_JOB, "NOANN")]
    refresh = platform.defs.resolve_job_def(REFRESH_JOB)
    assert {k.to_user_string() for k in refresh.asset_layer.executable_asset_keys} == set(
        REFRESH_ASSETS
    )
    result = _run(platform, ensemble[0])
    assert result.success, _failure(result)
    # Nothing changed: nothing to run.  Same bytes rewritten: nothing to run.
    assert _tick(platform, cursor)[0] == []
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    assert _tick(platform, cursor)[0] == []
    # A second annotator: only its partition runs, then the ensemble over both.
    (human_folder / "sat2.pog").write_text("3>2=1>0\n")
    again, cursor, _ = _tick(platform, cursor)
    assert [r.partition_key for r in again] == ["NOANN|sat2"] and again[0].run_key != requests[
        0
    ].run_key
    assert _run(platform, again[0]).success
    ensemble, cursor, _ = _tick(platform, cursor)
    assert _run(platform, ensemble[0]).success
    assert _stored(platform) == [("eco1",), ("sat2",)]
    assert _stored(platform, "annotator_weights") == [("eco1",), ("sat2",)]
    # A file removed: its partition is retired and the ensemble re-runs without it.
    (human_folder / "sat2.pog").unlink()
    gone, cursor, _ = _tick(platform, cursor)
    assert set(platform.instance.get_dynamic_partitions(ANNOTATORS)) == simulated | {"NOANN|eco1"}
    assert [(r.job_name, r.partition_key) for r in gone] == [(REFRESH_JOB, "NOANN")]
    assert _run(platform, gone[0]).success
    assert _stored(platform, "annotator_weights") == [("eco1",)]


def test_annotation_inputs_registers_exactly_the_folders_annotators(platform, human_folder):
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    (human_folder / "pogs.txt").write_text("# two people\n3>2>1>0\n0>1\n")
    (human_folder / "annotators.txt").write_text("ann_a\nann_b\n")
    assert _materialize(platform, ["annotation_inputs"], "NOANN").success
    keys = ["NOANN|ann_a", "NOANN|ann_b", "NOANN|eco1"]
    assert platform.instance.get_dynamic_partitions(ANNOTATORS) == keys
    for key in keys:
        assert _materialize(platform, ["annotator_pogs"], partition=key).success
    assert _stored(platform) == [("ann_a",), ("ann_b",), ("eco1",)]
    # eco1 leaves: its partition and its rows go; the others stay as they were
    (human_folder / "eco1.pog").unlink()
    assert _materialize(platform, ["annotation_inputs"], "NOANN").success
    assert platform.instance.get_dynamic_partitions(ANNOTATORS) == keys[:2]
    assert _stored(platform) == [("ann_a",), ("ann_b",)]
    assert _materialize(platform, ["ensemble_pog"], "NOANN").success
    assert _stored(platform, "annotator_weights") == [("ann_a",), ("ann_b",)]


def test_ensemble_refuses_to_leave_out_an_annotator_without_a_stored_pog(platform, human_folder):
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    (human_folder / "sat2.pog").write_text("3>2=1>0\n")
    assert _materialize(platform, ["annotation_inputs"], "NOANN").success
    assert _materialize(platform, ["annotator_pogs"], partition="NOANN|eco1").success
    result = _materialize(platform, ["ensemble_pog"], "NOANN")
    assert not result.success and "NOANN|sat2" in _failure(result)


def test_an_annotator_name_that_cannot_name_a_file_is_refused(platform, human_folder):
    (human_folder / "pogs.txt").write_text("3>2>1>0\n")
    (human_folder / "annotators.txt").write_text("../evil\n")
    result = _materialize(platform, ["annotation_inputs"], "NOANN")
    assert not result.success and "'../evil'" in _failure(result)
    assert platform.instance.get_dynamic_partitions(ANNOTATORS) == []


def test_sensor_ignores_simulated_files_and_unrelated_files(platform):
    platform.folder.mkdir(parents=True)
    _, cursor, _ = _tick(platform, None)
    (platform.folder / "sim1.pog").write_text("1>0\n")
    (platform.folder / ".simulated.json").write_text(json.dumps(["sim1"]))
    (platform.folder / "README.md").write_text("notes")
    assert _tick(platform, cursor)[0] == []


def test_sensor_waits_while_another_run_is_in_progress(platform, human_folder):
    _, cursor, _ = _tick(platform, None)
    (human_folder / "eco1.pog").write_text("1>0\n")
    platform.instance.add_run(
        DagsterRun(job_name="country_models", run_id="busy-run", status=DagsterRunStatus.STARTED)
    )
    requests, waited, skip = _tick(platform, cursor)
    assert requests == [] and "busy-run" in skip and waited == cursor  # change kept for later
    platform.instance.report_run_canceled(platform.instance.get_run_by_id("busy-run"))
    assert len(_tick(platform, waited)[0]) == 1


def test_malformed_file_fails_only_its_annotator_and_the_ensemble_keeps_its_result(
    platform, human_folder
):
    _, cursor, _ = _tick(platform, None)
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    requests, cursor, _ = _tick(platform, cursor)
    assert _run(platform, requests[0]).success
    ensemble, cursor, _ = _tick(platform, cursor)
    assert _run(platform, ensemble[0]).success
    (human_folder / "zz_bad.pog").write_text("3=2>>1\n")
    requests, cursor, _ = _tick(platform, cursor)
    assert [r.partition_key for r in requests] == ["NOANN|zz_bad"]
    result = _run(platform, requests[0])
    assert not result.success
    assert "zz_bad.pog:1:5:" in _failure(result)
    after, cursor, skip = _tick(platform, cursor)
    assert after == [] and "failed" in skip  # no ensemble over a partial set
    assert _stored(platform) == [("eco1",)]  # the earlier rows stay
    assert _stored(platform, "annotator_weights") == [("eco1",)]


def test_sensor_result_is_a_skip_not_an_error_when_no_folder_exists(platform):
    requests, cursor, skip = _tick(platform, None)
    assert requests == [] and json.loads(cursor)["folders"] == {
        "NOANN": None,
        "SYN": None,
        "TWO": None,
    }
    assert _tick(platform, cursor)[2] == "no annotation file changed"


def test_a_settings_change_retrains_only_the_materialised_ensembles(platform, human_folder):
    """Declarative automation (STALE_MODEL): after the countries file changes, the next evaluation
    requests the ensemble of the country that had one, not the countries that never did."""
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")
    assert _materialize(platform, ["annotation_inputs"], "NOANN").success
    assert _materialize(platform, ["annotator_pogs"], partition="NOANN|eco1").success
    assert _materialize(platform, ["ensemble_pog"], "NOANN").success
    first = evaluate_automation_conditions(
        defs=platform.defs, instance=platform.instance, asset_selection=AssetSelection.all()
    )
    assert first.total_requested == 0
    changed = platform.root / "countries_v2.yaml"
    changed.write_text(
        Path(platform.defs.resources["settings"].countries_file)
        .read_text()
        .replace(
            "name: synthetic imagery with a missing human annotation folder",
            "name: synthetic imagery with a missing human annotation folder\n"
            "    models: {ensemble_tiers: 2}",
        )
    )
    reloaded = build_definitions(
        load_countries(changed),
        data_root=str(platform.data),
        countries_file=str(changed),
        warehouse_path=str(platform.db),
    )
    again = evaluate_automation_conditions(
        defs=reloaded,
        instance=platform.instance,
        cursor=first.cursor,
        asset_selection=AssetSelection.all(),
    )
    assert again.get_requested_partitions(AssetKey("ensemble_pog")) == {"NOANN"}
    assert again.get_requested_partitions(AssetKey("annotator_weights")) == {"NOANN"}
    assert again.get_num_requested(AssetKey("scorer")) == 0  # never trained: not re-trained
    settled = evaluate_automation_conditions(
        defs=reloaded,
        instance=platform.instance,
        cursor=again.cursor,
        asset_selection=AssetSelection.all(),
    )
    assert settled.total_requested == 0  # once per change


def test_clashing_annotator_names_start_nothing_until_fixed(platform, human_folder):
    _, cursor, _ = _tick(platform, None)
    (human_folder / "pogs.txt").write_text("3>2>1>0\n")
    (human_folder / "annotators.txt").write_text("eco1\n")
    (human_folder / "eco1.pog").write_text("3=2>1>0\n")  # the same name twice
    requests, cursor, _ = _tick(platform, cursor)
    assert requests == [] and not any(
        k.startswith("NOANN|") for k in platform.instance.get_dynamic_partitions(ANNOTATORS)
    )
    (human_folder / "eco1.pog").unlink()
    requests, cursor, _ = _tick(platform, cursor)
    assert [r.partition_key for r in requests] == ["NOANN|eco1"]
