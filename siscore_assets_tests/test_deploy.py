"""The deployment configurations load: the local default (dagster.yaml: queued runs, bounded
queue, multiprocess executor) and the distributed examples under deploy/ (Celery, Kubernetes),
each validated with Dagster's own schema (the executors' schemas come with the `deploy` extra;
without it those checks skip and say so)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, job, op, validate_run_config
from dagster._core.instance.config import dagster_instance_config

from siscore_assets.definitions import EXECUTOR, executor_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "x",
    "DAGSTER_PG_DB": "dagster",
    "SISCORE_IMAGE": "siscore:latest",
    "SISCORE_CELERY_BROKER": "pyamqp://guest@rabbitmq//",
    "SISCORE_CELERY_BACKEND": "rpc://",
}


@pytest.fixture
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def test_the_local_instance_queues_runs_with_a_bound(tmp_path):
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(tmp_path / "storage")
    for section in ("local_artifact_storage", "compute_logs"):
        config[section]["config"]["base_dir"] = str(tmp_path / section)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert queue.max_concurrent_runs == 4
        assert queue.tag_concurrency_limits == [
            {"key": "siscore/serial", "limit": 1, "value": {"applyLimitPerUniqueValue": True}}
        ]


def test_the_default_executor_is_multiprocess():
    assert executor_for() is EXECUTOR and EXECUTOR.name == "siscore_multiprocess"
    with pytest.raises(ValueError, match="SISCORE_EXECUTOR='spark'"):
        executor_for("spark")


@pytest.mark.parametrize("name", ["celery", "k8s"])
def test_distributed_instance_configs_validate(name, env):
    if name == "k8s":
        pytest.importorskip("dagster_k8s", reason="dagster-k8s (the deploy extra) is not installed")
    config, _ = dagster_instance_config(str(DEPLOY / name), "dagster.yaml")
    assert "postgres" in config["storage"]
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 8


@pytest.mark.parametrize("name,package", [("celery", "dagster_celery"), ("k8s", "dagster_k8s")])
def test_distributed_run_configs_validate_against_their_executor(name, package, env):
    pytest.importorskip(package, reason=f"{package} (the deploy extra) is not installed")

    @op
    def step():
        return 1

    @job(executor_def=executor_for(name))
    def one_step():
        step()

    run_config = yaml.safe_load((DEPLOY / name / "run_config.yaml").read_text())
    assert validate_run_config(one_step, run_config)["execution"]


def test_the_gpu_step_pod_asks_for_a_gpu():
    pod = yaml.safe_load((DEPLOY / "k8s" / "gpu_step_pod.yaml").read_text())
    (container,) = pod["containers"]
    assert (
        container["resources"]["limits"]["nvidia.com/gpu"] == 1 and pod["restartPolicy"] == "Never"
    )
