"""`make dev` runs `dg dev`: the checkout must be a dg project whose definitions load, with no
warning on the way (dg's own checks, the same load `dg dev` does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_dg_check_defs_loads_the_project_without_a_warning(tmp_path):
    venv = Path(sys.executable).parent.parent
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "DAGSTER_HOME": str(tmp_path),
        "SISCORE_DATA_ROOT": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [str(venv / "bin" / "dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "All definitions loaded successfully" in out
    assert "warning" not in out.lower(), out
