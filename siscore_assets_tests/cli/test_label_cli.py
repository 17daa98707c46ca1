"""``siscore label merge``: exports and folders merged into the contract CSV with the agreement
printed; every bad input exits 2 with one ``FILE:LINE: problem`` line and writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from siscore_assets.cli import app
from siscore_assets.core.ranking import label_kit as lk

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_writes_soft_labels_and_prints_agreement(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    _write(folder / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,urban\n14/1/2,2016,rural\n")
    _write(folder / "b.labels.csv", "tile_id,year,label\n14/1/1,2016,urban\n14/1/2,2016,urban\n")
    out = tmp_path / "merged.csv"
    res = runner.invoke(app, ["label", "merge", str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    assert got.to_dict("list") == {
        "tile_id": ["14/1/1", "14/1/2"],
        "year": [2016, 2016],
        "urban": [1.0, 0.5],
        "rural": [0.0, 0.5],
        "uninhabited": [0.0, 0.0],
        "n_annotators": [2, 2],
    }
    assert "2 tile-years from 2 annotator(s)" in res.output
    assert "a / b: 2 in common, agreement 0.500" in res.output


def test_merge_checks_tiles_against_the_kit_and_writes_nothing_on_bad_input(tmp_path):
    kit = lk.render_label_kit(
        [lk.KitTile("14/1/1", 2016, np.zeros((8, 8, 3), np.uint8))], title="k", px=16
    )
    page = _write(tmp_path / "label_kit.html", kit.html)
    good = _write(tmp_path / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,rural\n")
    bad = _write(tmp_path / "b.labels.csv", "tile_id,year,label\n14/1/1,2017,rural\n")
    out = tmp_path / "merged.csv"
    res = runner.invoke(
        app, ["label", "merge", str(good), str(bad), "--out", str(out), "--kit", str(page)]
    )
    assert res.exit_code == 2
    assert res.stderr.strip() == f"{bad}:2: unknown tile 14/1/1 in 2017"
    assert not out.exists()
    empty = _write(tmp_path / "c.labels.csv", "")
    res = runner.invoke(app, ["label", "merge", str(good), str(empty), "--out", str(out)])
    assert (
        res.exit_code == 2
        and res.stderr.strip() == f"{empty}:1: empty export (no header, no labels)"
    )
    assert not out.exists()


def test_a_bad_out_is_one_line_before_anything_is_done(tmp_path, tiny_countries, monkeypatch):
    """--out . failed with "PosixPath('.') has an empty name" (exit 1), --out in a missing folder
    made that folder, and `label kit --out <a folder>` failed only after building the kit."""
    good = _write(tmp_path / "a.labels.csv", "tile_id,year,label\n14/1/1,2016,rural\n")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["label", "merge", str(good), "--out", "."])
    assert (
        res.exit_code == 2 and res.output.strip() == "error: --out . is a folder; give a file name"
    )
    missing = tmp_path / "nowhere" / "m.csv"
    res = runner.invoke(app, ["label", "merge", str(good), "--out", str(missing)])
    assert res.exit_code == 2 and "folder" in res.output and "does not exist" in res.output
    assert not missing.parent.exists()
    monkeypatch.setenv("SISCORE_COUNTRIES", str(tiny_countries))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))  # nothing ingested: no kit
    res = runner.invoke(app, ["label", "kit", "--country", "SYN", "--out", str(tmp_path)])
    assert res.exit_code == 2 and res.output.strip() == (
        f"error: --out {tmp_path} is a folder; give a file name"
    )
