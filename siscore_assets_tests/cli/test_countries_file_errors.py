"""A countries file that cannot be used stops the ``siscore`` command with one line
``FILE:LINE: problem`` on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "line", "problem", "command"), [
    ("countries:\n  A:\n    years: [2016\n    source: {kind: synthetic}\n", 4, "not valid YAML", "countries"),
    ("countries:\n  A:\n    source: {kind: synthetic}\n    years: 2016\n", 4, "'years' must be", "run"),
])
def test_bad_countries_file_is_one_line_and_exit_2(tmp_path, text, line, problem, command):
    path = tmp_path / "countries.yaml"
    path.write_text(text)
    env = {**os.environ, "SISCORE_COUNTRIES": str(path), "PYTHONPATH": str(ROOT),
           "DAGSTER_HOME": str(tmp_path), "SISCORE_DATA_ROOT": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "siscore_assets.cli", command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:{line}: ") and problem in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
