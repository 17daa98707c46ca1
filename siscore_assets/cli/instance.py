"""The Dagster instance the commands record their runs in."""

from __future__ import annotations

import os


def dagster_instance():
    """$DAGSTER_HOME's instance when set (runs then show in `make dev`), else an ephemeral one."""
    from dagster import DagsterInstance

    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
