"""Which Dagster instance ``siscore`` records its runs in: ``$DAGSTER_HOME``'s, else the data
root's own (never a throwaway one), with the project's run-queue settings."""

from __future__ import annotations

from siscore_assets.cli.instance import dagster_instance, max_concurrent_runs, where_runs_go
from siscore_assets.cli.run_log import expected_annotators, write_failure_log
from siscore_assets.core.countries import load_countries


def test_without_dagster_home_the_data_root_holds_the_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # any working directory
    with dagster_instance() as instance:
        assert not instance.is_ephemeral
        assert max_concurrent_runs(instance) == 4  # dagster.yaml's queue bound
        assert str(tmp_path / "data" / "dagster") in instance.root_directory
    assert (tmp_path / "data" / "dagster" / "storage").is_dir()
    assert (tmp_path / "data" / "dagster" / "dagster.yaml").is_file()
    assert "DAGSTER_HOME=" in where_runs_go() and str(tmp_path / "data") in where_runs_go()


def test_the_failure_log_and_the_expected_annotators(tmp_path, tiny_countries):
    path = write_failure_log(tmp_path, "SYN", ["== SYN|2016 patches\nTraceback ...", "two"])
    assert path.parent == tmp_path / "logs" and "Traceback" in path.read_text()
    reg = load_countries(tiny_countries)
    assert expected_annotators(reg.get("SYN"), tmp_path) == 5  # the simulated annotators
    assert expected_annotators(reg.get("NOANN"), tmp_path) is None  # folder not there yet
