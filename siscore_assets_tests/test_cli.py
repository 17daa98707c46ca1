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
        Image.fromarray(np.full((16, 16, 3), 40 * cid, np.uint8)).save(tmp_path / "clusters" / str(cid) / "1.png")
    (tmp_path / "clusters" / "2" / "2.png").write_bytes(b"broken")
    out = tmp_path / "kit.html"
    result = runner.invoke(app, ["kit", "--clusters", str(tmp_path / "clusters"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 clusters" in result.output and "skipped" in result.output and "2.png" in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["kit", "--clusters", str(tmp_path / "nope"), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "not found" in result.output
    assert not (tmp_path / "x.html").exists()
