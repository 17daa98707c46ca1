"""The Dagster UI as a person uses it: `dagster-webserver` on 127.0.0.1 (a free port, a temporary
DAGSTER_HOME and data root, the project's workspace.yaml and dagster.yaml), checked through its
GraphQL API (asset graph, both partitionings, schedule and sensors), one partition run launched
and followed to success, and headless-Chromium screenshots of the lineage and of an asset's
partitions page, kept under ``artifacts/ui/`` (git-ignored) for a person to look at.

The run coordinator is the default one here (runs start at once): the project's queued
coordinator needs the daemon, which `make dev` starts and this test does not.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from siscore_assets_tests.conftest import TINY_COUNTRIES
from siscore_assets_tests.fixtures.browser import CHROMIUM, FLAGS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("SISCORE_ARTIFACTS", ROOT / "artifacts")) / "ui"
RUN_PARTITION = "SYN|2016"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - localhost only
        return r.read()


class Ui:
    def __init__(self, url: str) -> None:
        self.url = url

    def gql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - localhost only
            out = json.loads(r.read())
        assert "errors" not in out, out["errors"]
        return out["data"]


def _instance_yaml(home: Path) -> None:
    """The project's dagster.yaml with its storage moved into ``home`` and runs started at once."""
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(home / "storage")
    for section in ("local_artifact_storage", "compute_logs"):
        config[section]["config"]["base_dir"] = str(home / section)
    config["run_coordinator"] = {
        "module": "dagster.core.run_coordinator",
        "class": "DefaultRunCoordinator",
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    _instance_yaml(home)
    countries = tmp / "countries.yaml"
    countries.write_text(TINY_COUNTRIES.replace("{missing}", str(tmp / "no_such_folder")))
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SISCORE_COUNTRIES": str(countries),
        "SISCORE_DATA_ROOT": str(tmp / "data"),
        "SISCORE_WAREHOUSE": str(tmp / "warehouse.duckdb"),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
    }
    exe = Path(sys.executable).with_name("dagster-webserver")
    log = (tmp / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                info = json.loads(_get(f"{url}/server_info"))
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"webserver did not come up: {(tmp / 'webserver.log').read_text()[-3000:]}"
                    )
                time.sleep(1)
        assert "dagster_webserver_version" in info
        yield Ui(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _location_loaded(ui: Ui) -> dict:
    for _ in range(120):
        data = ui.gql("""{ workspaceOrError { ... on Workspace { locationEntries { name
            locationOrLoadError { __typename ... on PythonError { message } } } } } }""")
        entries = data["workspaceOrError"]["locationEntries"]
        kinds = {e["name"]: e["locationOrLoadError"] for e in entries}
        if kinds.get("siscore") and kinds["siscore"]["__typename"] == "RepositoryLocation":
            return kinds
        assert not kinds.get("siscore") or kinds["siscore"]["__typename"] != "PythonError", kinds
        time.sleep(1)
    pytest.fail("code location siscore did not load")


def test_graphql_shows_the_graph_both_partitionings_schedule_and_sensors(ui):
    _location_loaded(ui)
    data = ui.gql("""{ assetNodes { assetKey { path } groupName dependencyKeys { path }
        partitionKeys } }""")
    nodes = {n["assetKey"]["path"][-1]: n for n in data["assetNodes"]}
    assert {
        "granules",
        "patches",
        "clusters",
        "annotator_pogs",
        "ensemble_pog",
        "scorer",
        "siscore_grid",
        "siscore_change",
        "development_regression",
    } <= set(nodes)
    assert {"path": ["granules"]} in nodes["patches"]["dependencyKeys"]
    assert set(nodes["siscore_grid"]["partitionKeys"]) == {
        "SYN|2016",
        "SYN|2017",
        "TWO|2017",
        "NOANN|2016",
    }
    assert set(nodes["scorer"]["partitionKeys"]) == {"SYN", "TWO", "NOANN"}
    repo = ui.gql("""{ repositoriesOrError { ... on RepositoryConnection { nodes { name
        schedules { name cronSchedule } sensors { name } jobs { name } } } } }""")
    (node,) = repo["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in node["schedules"]} == {"yearly_siscore_refresh"}
    assert {"annotation_files_changed", "yearly_refresh_dependents"} <= {
        s["name"] for s in node["sensors"]
    }
    assert {"yearly_refresh", "country_models", "annotation_refresh"} <= {
        j["name"] for j in node["jobs"]
    }


def test_one_partition_run_launched_from_the_ui_succeeds(ui):
    _location_loaded(ui)
    params = {
        "selector": {
            "repositoryLocationName": "siscore",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["granules"]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": RUN_PARTITION}]},
        "runConfigData": "{}",
        "mode": "default",
    }
    out = ui.gql(
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
        ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
        ... on RunConfigValidationInvalid { errors { message } }
        ... on InvalidSubsetError { message } } }""",
        {"p": params},
    )["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    run_id = out["run"]["runId"]
    status = None
    for _ in range(240):
        status = ui.gql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", status
    data = ui.gql("""{ assetNodes(assetKeys: [{path: ["granules"]}]) { assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions } } } }""")
    assert data["assetNodes"][0]["assetPartitionStatuses"]["materializedPartitions"] == [
        RUN_PARTITION
    ]


def _screenshot(url: str, out: Path, tmp: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            "--hide-scrollbars",
            f"--user-data-dir={tmp}",
            "--window-size=1600,1000",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_screenshots_of_the_lineage_and_the_partitions_page(ui, tmp_path):
    if os.environ.get("SISCORE_SKIP_BROWSER") == "1":
        pytest.skip("SISCORE_SKIP_BROWSER=1")
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: run `bash scripts/setup_browser.sh` (or SISCORE_SKIP_BROWSER=1)"
        )
    _location_loaded(ui)
    shots = {
        "lineage.png": f"{ui.url}/asset-groups",
        "granules_partitions.png": f"{ui.url}/assets/granules?view=partitions",
    }
    for name, url in shots.items():
        _screenshot(url, ARTIFACTS / name, tmp_path / name)
        data = (ARTIFACTS / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, (name, len(data))
    shutil.rmtree(tmp_path, ignore_errors=True)
