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
