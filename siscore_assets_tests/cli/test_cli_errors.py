"""Every ``siscore`` error path: one line on stderr, a non-zero exit, never a traceback; and the
countries file's paths, CRSs and geometry types checked when it is used (issue 29)."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from PIL import Image

from siscore_assets.cli import app


def _siscore(capsys, *args: str) -> tuple[int, str, str]:
    code = app(list(args), prog_name="siscore", standalone_mode=False)
    out = capsys.readouterr()
    return code, out.out, out.err


BAD = [
    ("run", "--years", "20x6"),
    ("run", "--country", "XYZ"),
    ("run", "--country", "SYN", "--years", "2031"),
    ("run", "--executor", "nope"),
    ("run", "--bogus"),
    ("summary", "--country", "../X"),
    ("export", "--country", "XYZ"),
    ("export", "--format", "shp"),
    ("export", "--format", "gpkg", "--out", "{tmp}"),
    ("export", "--format", "gpkg", "--out", "{tmp}/x.parquet"),
    ("export", "--format", "gpkg", "--out", "{tmp}/no/such/x.gpkg"),
    ("change", "--from", "2016", "--to", "2030"),
    ("change", "--from", "20x6", "--to", "2017"),
    ("kit", "--clusters", "{tmp}/none", "--out", "{tmp}/k.html"),
    ("pog", "check", "{tmp}/none.pog"),
    ("scores", "import", "{tmp}/none.csv", "--country", "SYN", "--name", "x"),
    ("proxies", "import", "{tmp}/none.csv", "--country", "XYZ", "--name", "x"),
    ("sql", "--warehouse", "{tmp}/nowhere.duckdb", "SELECT 1"),
    ("country", "add", "LAO", "--years", "20x6", "--stac", "https://x.org", "--bbox", "1,2,3,4"),
    ("sample", "nk", "--dest", "{tmp}/a_file"),
    ("warehouse", "nothing"),
]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_every_command_with_a_bad_argument_is_one_line(args, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_COUNTRIES", raising=False)
    (tmp_path / "a_file").write_text("x")
    code, out, err = _siscore(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "Traceback" not in err + out, (code, out, err)
    assert not (tmp_path / "k.html").exists()


def _countries(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "countries.yaml"
    path.write_text("countries:\n  ABC:\n    years: [2016]\n" + body)
    return path


def _tiles(root: Path) -> None:
    folder = root / "tiles" / "2016"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((256, 256, 3), 90, np.uint8)).save(folder / "6260_13990.png")


def _layer(path: Path, geom, crs="EPSG:4326", **cols) -> Path:
    gpd.GeoDataFrame(cols or {"a": [1]}, geometry=[geom], crs=crs).to_file(path)
    return path


def _probes(tmp_path: Path) -> dict[str, tuple[str, int, str]]:
    root = tmp_path / "sample"
    _tiles(root)
    src = f"    source: {{kind: tile_folder, root: {root}}}\n"
    poly = shapely.box(127.0, 39.0, 127.1, 39.1)
    noprj = _layer(tmp_path / "noprj.shp", poly)
    noprj.with_suffix(".prj").unlink()
    polygons = _layer(tmp_path / "zones.gpkg", poly)
    return {
        "missing tile root": (
            "    source: {kind: tile_folder, root: /no/such/sample}\n",
            4,
            "imagery folder not found",
        ),
        "missing district file": (src + "    districts: /no/such/districts.shp\n", 5, "not found"),
        "shapefile without .prj": (src + f"    districts: {noprj}\n", 5, "no CRS"),
        "polygons as points": (
            src + f"    covariates:\n      port: {polygons}\n",
            6,
            "Polygon geometries; expected Point",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["missing tile root", "missing district file", "shapefile without .prj", "polygons as points"],
)
def test_countries_checks_what_the_file_names(case, tmp_path, monkeypatch, capsys):
    body, line, problem = _probes(tmp_path)[case]
    path = _countries(tmp_path, body)
    monkeypatch.setenv("SISCORE_COUNTRIES", str(path))
    code, out, err = _siscore(capsys, "countries")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, out, err)
    assert "ABC" in out and "[not ready" in out, out  # still listed, marked
    assert lines[0].startswith(f"{path}:{line}: country ABC: ") and problem in lines[0], lines


def test_a_good_tile_folder_country_is_listed(tmp_path, monkeypatch, capsys):
    root = tmp_path / "sample"
    _tiles(root)
    poly = shapely.box(127.0, 39.0, 127.1, 39.1)
    districts = _layer(tmp_path / "d.gpkg", poly, Level2=["Kosan"])
    port = _layer(tmp_path / "p.gpkg", shapely.Point(127.05, 39.05))
    path = _countries(
        tmp_path,
        f"    source: {{kind: tile_folder, root: {root}}}\n"
        f"    districts: {{file: {districts}, name: Level2}}\n"
        f"    covariates: {{port: {port}}}\n",
    )
    monkeypatch.setenv("SISCORE_COUNTRIES", str(path))
    code, out, err = _siscore(capsys, "countries")
    assert code == 0 and out.startswith("ABC"), err
    path.write_text(path.read_text().replace("name: Level2", "name: NAME_2"))
    code, out, err = _siscore(capsys, "countries")
    assert code == 2 and "no column 'NAME_2'" in err and f"{path}:5: " in err


def test_the_verbose_flag_prints_the_trace(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path))
    os.environ.pop("SISCORE_VERBOSE", None)
    code, _, err = _siscore(capsys, "--verbose", "export", "--country", "XYZ")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: unknown country")


def _leaf_commands() -> list[tuple[str, ...]]:
    import typer

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if not subs:
            return [path]
        return [p for name, sub in sorted(subs.items()) for p in walk(sub, (*path, name))]

    return walk(typer.main.get_command(app), ())


@pytest.mark.parametrize("path", _leaf_commands(), ids=lambda p: " ".join(p))
def test_every_command_refuses_an_unknown_option_in_one_line(path, capsys):
    """Every command there is (new ones included), given an option it does not have."""
    code, out, err = _siscore(capsys, *path, "--no-such-option")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    assert err.startswith("error: No such option: --no-such-option")


def test_a_bad_executor_is_named_by_its_option(tmp_path, monkeypatch, capsys):
    """The value came from --executor, not from $SISCORE_EXECUTOR."""
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.delenv("SISCORE_COUNTRIES", raising=False)
    monkeypatch.delenv("SISCORE_EXECUTOR", raising=False)
    code, _, err = _siscore(capsys, "run", "--country", "SYN", "--executor", "bogus")
    assert code == 2 and err.strip() == (
        "error: --executor 'bogus': expected multiprocess, in_process, celery or k8s"
    )
