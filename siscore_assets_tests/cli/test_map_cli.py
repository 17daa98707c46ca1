"""`siscore map`: `--out DIR` writes the static site; without it the map is served on
127.0.0.1 at a free port whose URL is printed; an unknown country is one clear line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets_tests.fixtures.web_warehouse import make_warehouse

runner = CliRunner()


@pytest.fixture
def filled(tiny_countries, monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_warehouse(data)
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(data))
    monkeypatch.delenv("SISCORE_WAREHOUSE", raising=False)
    return data


def test_out_writes_the_static_site(filled, tmp_path):
    out = tmp_path / "site"
    result = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "81 tiles, years 2016, 2017" in result.output
    assert "static site written" in result.output
    assert (out / "index.html").is_file() and (
        out / "vendor" / "maplibre-gl" / "LICENSE.txt"
    ).is_file()


def test_a_site_newer_than_the_warehouse_is_not_built_again(filled, tmp_path):
    """A 32,578-tile country's site takes minutes: the second `siscore map --out` serves what
    is there, until a table the site reads is written again (or --rebuild)."""
    from siscore_assets.core.storage import warehouse as wh

    out = tmp_path / "site"
    first = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert first.exit_code == 0 and "81 tiles" in first.output
    again = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert again.exit_code == 0 and "up to date with the warehouse" in again.output
    assert "81 tiles" not in again.output
    forced = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out), "--rebuild"])
    assert "81 tiles" in forced.output
    db = filled / "warehouse.duckdb"
    time.sleep(0.05)
    rows = wh.query(db, "SELECT * FROM siscore_grid WHERE year = 2017")
    wh.write(db, "siscore_grid", rows, {"country": "SYN", "year": 2017})
    changed = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert "81 tiles" in changed.output


def test_unknown_country_is_one_clear_line(filled):
    result = runner.invoke(app, ["map", "--country", "NOPE"])
    assert result.exit_code == 2
    assert "NOPE" in result.output


def _sigterm_ignored_and_blocked() -> None:
    """As a parent can leave a child (inherited across exec): the server must still stop on
    `kill` (it outlived terminate() in the suite's workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def test_serves_on_localhost_and_prints_the_url(filled):
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-m", "siscore_assets.cli", "map", "--country", "SYN"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        preexec_fn=_sigterm_ignored_and_blocked,
    )
    try:
        url, lines, end = None, [], time.time() + 120
        while url is None and time.time() < end:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://127.0.0.1:" in line:
                url = line.split(": ", 1)[1].split()[0]
        assert url, "".join(lines)
        with urllib.request.urlopen(url + "index.html", timeout=10) as resp:
            assert b"maplibre-gl.js" in resp.read()
        with urllib.request.urlopen(url + "site.json", timeout=10) as resp:
            assert b'"years"' in resp.read()
        assert (filled / "SYN" / "web" / "index.html").is_file()
    finally:
        proc.terminate()
        try:  # communicate drains the pipe: a child blocked writing to it cannot exit
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0 and "stopped" in rest  # `kill` stops it as Ctrl-C does


def test_a_site_of_another_warehouse_or_country_is_not_up_to_date(filled, tmp_path, monkeypatch):
    """Only mtimes were compared: another warehouse's older tables, or a country with no rows,
    left the first site served as "up to date"."""
    other = tmp_path / "other"
    other.mkdir()
    make_warehouse(other)  # older than the site built next
    out = tmp_path / "site"
    assert runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)]).exit_code == 0
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(other))
    again = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert again.exit_code == 0 and "81 tiles" in again.output, again.output
    assert "up to date" not in again.output


def test_a_failed_build_keeps_the_old_site_and_makes_no_folder(filled, tmp_path):
    """TWO has nothing in the warehouse: SYN's site stays whole, no empty site is written."""
    out = tmp_path / "site"
    assert runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)]).exit_code == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for extra in ([], ["--rebuild"]):
        res = runner.invoke(app, ["map", "--country", "TWO", "--out", str(out), *extra])
        assert res.exit_code == 2 and "has nothing for TWO" in res.output, res.output
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert '"country":"SYN"' in (out / "index.html").read_text()
    fresh = tmp_path / "fresh"
    res = runner.invoke(app, ["map", "--country", "TWO", "--out", str(fresh)])
    assert res.exit_code == 2 and not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_years_the_countries_file_dropped_are_left_out(
    filled, tiny_countries, tmp_path, monkeypatch
):
    """As `siscore export` does: the warehouse's 2016 is not configured any more."""
    import json

    text = tiny_countries.read_text().replace("years: [2016, 2017]", "years: [2017]", 1)
    (tmp_path / "now.yaml").write_text(text)
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tmp_path / "now.yaml"))
    out = tmp_path / "site"
    res = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "years 2017 (" in res.output
    assert "note: leaving out 2016: in the warehouse, no longer configured for SYN" in res.output
    assert json.loads((out / "site.json").read_text())["years"] == [2017]
    again = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert "up to date" in again.output
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))  # 2016 configured again
    back = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert "years 2016, 2017" in back.output, back.output


def test_a_map_of_two_scorers_years_is_refused_before_anything_is_built(filled, tmp_path):
    from siscore_assets.core.storage import warehouse as wh

    db = filled / "warehouse.duckdb"
    for year, made_by in ((2016, "0123456789abcdef"), (2017, "fedcba9876543210")):
        grid = wh.read(db, "siscore_grid", {"country": "SYN", "year": year})
        wh.write(db, "siscore_grid", grid.assign(scorer=made_by), {"country": "SYN", "year": year})
    out = tmp_path / "site"
    result = runner.invoke(app, ["map", "--country", "SYN", "--out", str(out)])
    assert result.exit_code != 0 and "were scored by different scorers" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
