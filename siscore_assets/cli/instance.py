"""The Dagster instance the commands record their runs in."""

from __future__ import annotations

import os


def dagster_instance():
    """$DAGSTER_HOME's instance when set (runs then show in `make dev`), else an ephemeral one."""
    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def max_concurrent_runs(instance, default: int = 4) -> int:
    """The run queue's bound from dagster.yaml (``concurrency: runs: max_concurrent_runs``), which
    `siscore run` also keeps to when it starts partition runs side by side."""
    try:
        limit = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
    except Exception:  # noqa: BLE001 - an instance without a run queue (ephemeral): the default
        return default
    return limit if limit and limit > 0 else default
