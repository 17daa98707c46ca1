"""What ``siscore run`` keeps beside its one-line errors: the full traces, in a log file under the
data root, and how many annotator runs to expect (so the progress count does not jump)."""

from __future__ import annotations

import time
from pathlib import Path

from siscore_assets.core.countries import GENERATED, CountryConfig

LOG_DIR = "logs"


def write_failure_log(data_root: Path, code: str, traces: list[str]) -> Path:
    """``<data root>/logs/run-<code>-<UTC time>.log`` with every failed step's full trace."""
    folder = Path(data_root) / LOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"run-{code}-{stamp}.log"
    path.write_text("\n\n".join(traces) + "\n", encoding="utf-8")
    return path.absolute()


def expected_annotators(cfg: CountryConfig, data_root: Path) -> int | None:
    """The annotator partitions ``annotation_inputs`` will register: the synthetic country's
    simulated annotators, else the POGs in the annotation folder (None: not known yet)."""
    if cfg.annotations == GENERATED and cfg.is_synthetic:
        return int(cfg.source.n_annotators)
    try:
        from siscore_assets.core.ranking import read_annotation_folder

        return len(read_annotation_folder(cfg.annotation_folder(Path(data_root)))) or None
    except Exception:  # noqa: BLE001 - the run itself reports a bad folder; the count just waits
        return None
