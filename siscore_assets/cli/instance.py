"""The Dagster instance the commands record their runs in, whatever the working directory.

* ``$DAGSTER_HOME`` set (``make`` sets it to the checkout): that instance, as Dagster would.
* Otherwise the instance under the data root: ``<data root>/dagster/`` with the project's
  ``dagster.yaml`` settings (run queue, concurrency) and its storage folders moved under that
  root.  With the default data root this is the very storage ``make dev`` shows
  (``dagster.yaml`` puts it in ``data/dagster/``), so runs started from a plain shell in the
  checkout show in the UI; a private data root (``SISCORE_DATA_ROOT=/tmp/x/data``) gets a
  private instance beside its data, never a throwaway one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from siscore_assets.core.countries import PROJECT_ROOT

PROJECT_CONFIG = PROJECT_ROOT / "dagster.yaml"
DEFAULT_DATA_ROOT = "data"
#: The settings of ``dagster.yaml`` that name a folder, and where that folder sits.
_STORAGE_KEYS = (
    ("storage", "sqlite", "base_dir"),
    ("local_artifact_storage", "config", "base_dir"),
    ("compute_logs", "config", "base_dir"),
)


def data_root() -> Path:
    return Path(os.environ.get("SISCORE_DATA_ROOT") or DEFAULT_DATA_ROOT).expanduser().absolute()


def instance_folder(root: Path | None = None) -> Path:
    """Where the data root's instance keeps its runs: ``<data root>/dagster``."""
    return (root or data_root()) / "dagster"


def instance_config(root: Path | None = None) -> dict[str, Any]:
    """The project's ``dagster.yaml`` with every storage folder under ``<root>/dagster``
    (``data/dagster/storage`` -> ``<root>/dagster/storage``)."""
    base = instance_folder(root)
    config = yaml.safe_load(PROJECT_CONFIG.read_text()) if PROJECT_CONFIG.is_file() else {}
    config = dict(config or {})
    for section, middle, key in _STORAGE_KEYS:
        block = config.get(section)
        inner = block.get(middle) if isinstance(block, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get(key), str):
            name = Path(inner[key]).name  # storage, artifacts, compute_logs
            config[section] = {**block, middle: {**inner, key: str(base / name)}}
    return config


def where_runs_go() -> str:
    """One line: which instance records the runs, and how to see them in the UI."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return f"runs recorded in $DAGSTER_HOME={home}"
    folder = instance_folder()
    shown = folder == (PROJECT_ROOT / DEFAULT_DATA_ROOT / "dagster").absolute()
    ui = "`make dev` shows them" if shown else f"see them with DAGSTER_HOME={folder} dagster dev"
    return f"runs recorded in {folder} ({ui})"


def dagster_instance():
    """$DAGSTER_HOME's instance when set, else the data root's own (see the module)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    folder = instance_folder()
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(instance_config(), sort_keys=False)
    config = folder / "dagster.yaml"  # so `DAGSTER_HOME=<folder> dagster dev` shows the same runs
    if not config.is_file() or config.read_text() != text:
        tmp = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, config)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(folder)))


def max_concurrent_runs(instance, default: int = 4) -> int:
    """The run queue's bound from dagster.yaml (``concurrency: runs: max_concurrent_runs``), which
    `siscore run` also keeps to when it starts partition runs side by side."""
    try:
        limit = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
    except Exception:  # noqa: BLE001 - an instance without a run queue (ephemeral): the default
        return default
    return limit if limit and limit > 0 else default
