import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siscore_assets.cli import app

runner = CliRunner()


def test_unknown_country_exits_2_with_a_clear_message(tiny_countries, monkeypatch, tmp_path):
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    result = runner.invoke(app, ["run", "--country", "XXX"])
    assert result.exit_code == 2
    assert "unknown country 'XXX'" in result.output
    assert not (tmp_path / "data").exists()


def test_year_not_configured_exits_2(tiny_countries, monkeypatch, tmp_path):
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    result = runner.invoke(app, ["run", "--country", "TWO", "--years", "2016"])
    assert result.exit_code == 2
    assert "country TWO has no year 2016" in result.output


def test_countries_lists_the_configured_ones(tiny_countries, monkeypatch):
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    result = runner.invoke(app, ["countries"])
    assert result.exit_code == 0
    assert "SYN (default)" in result.output and "TWO" in result.output


def test_kit_from_a_cluster_folder(tmp_path):
    import numpy as np
    from PIL import Image

    for cid in (0, 1, 2):
        (tmp_path / "clusters" / str(cid)).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 40 * cid, np.uint8)).save(
            tmp_path / "clusters" / str(cid) / "1.png"
        )
    (tmp_path / "clusters" / "2" / "2.png").write_bytes(b"broken")
    out = tmp_path / "kit.html"
    result = runner.invoke(
        app, ["kit", "--clusters", str(tmp_path / "clusters"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3 clusters" in result.output and "skipped" in result.output and "2.png" in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = runner.invoke(
        app, ["kit", "--clusters", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html")]
    )
    assert result.exit_code == 2 and "not found" in result.output
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
def test_run_records_real_runs_and_exits_1_with_the_failing_step(
    tiny_countries, monkeypatch, tmp_path
):
    """`siscore run` creates its runs in $DAGSTER_HOME's instance (multiprocess executor); TWO's
    6 x 6 tiles are too few for its districts, so wave 1 fails and the command names the step."""
    import yaml
    from dagster import DagsterInstance, DagsterRunStatus

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(tmp_path / "storage")
    for section in ("local_artifact_storage", "compute_logs"):
        config[section]["config"]["base_dir"] = str(tmp_path / section)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    for key, value in {
        "SISCORE_COUNTRIES": tiny_countries,
        "SISCORE_DATA_ROOT": tmp_path / "data",
        "SISCORE_WAREHOUSE": tmp_path / "w.duckdb",
        "DAGSTER_HOME": tmp_path,
    }.items():
        monkeypatch.setenv(key, str(value))
    result = runner.invoke(app, ["run", "--country", "TWO"])
    assert result.exit_code == 1, result.output
    assert "up to 4 partition runs at once" in result.output
    assert re.search(r"wave 1/\d+ country TWO", result.output) and "FAILED" in result.output
    assert "error: TWO districts: need 1 <= n_provinces" in result.output
    assert "ValueError" not in result.output and "full traces: " in result.output
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.FAILURE and run.tags["dagster/partition"] == "TWO"
        assert run.job_name == "siscore_run_wave"
