"""``siscore sql`` on a copied and moved data folder, ``siscore country add`` from a real-format AOI
file, and ``siscore sample nk`` against a local double of the paper's repository."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from siscore_assets.cli import app
from siscore_assets.core import nk_sample
from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.storage import warehouse


def _siscore(capsys, *args: str) -> tuple[int, str, str]:
    code = app(list(args), prog_name="siscore", standalone_mode=False)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sql_answers_on_a_moved_copy_of_the_data_folder(tmp_path, capsys):
    data = tmp_path / "data"
    tiles = [Tile(14, 13920 + i, 6180) for i in range(3)]
    patches = pd.DataFrame(
        [
            {
                "country": "SYN",
                "year": 2019,
                "tile_id": t.tile_id,
                "z": 14,
                "x": t.x,
                "y": t.y,
                "status": "ok",
                **dict(zip(("left", "bottom", "right", "top"), t.bounds_3857())),
            }
            for t in tiles
        ]
    )
    warehouse.write(data / "warehouse.duckdb", "patches", patches, {"country": "SYN", "year": 2019})
    left, bottom, right, top = tiles[0].bounds_3857()
    box = shapely.box(left, bottom, right + (right - left), top)
    districts = pd.DataFrame(
        {"country": ["SYN"], "district_id": [1], "name": ["d1"], "geometry_wkb": [box.wkb]}
    )
    warehouse.write(data / "warehouse.duckdb", "districts", districts, {"country": "SYN"})
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(data, moved)
    shutil.rmtree(data)  # the original is gone: the copy must not read it
    query = (
        "SELECT d.name, count(*) AS tiles FROM tile_polygons t JOIN district_geometries d "
        "ON t.country = d.country AND ST_Within(ST_Centroid(t.geometry), d.geometry) "
        "WHERE t.year = 2019 GROUP BY d.name"
    )
    code, out, err = _siscore(
        capsys, "sql", "--warehouse", str(moved / "warehouse.duckdb"), "--csv", query
    )
    assert code == 0, err
    assert out.splitlines() == ["name,tiles", "d1,2"]
    code, _, err = _siscore(capsys, "sql", "--warehouse", str(moved / "warehouse.duckdb"), "SELEC")
    assert code == 2 and err.startswith("error: Parser Error") and len(err.splitlines()) == 1
    # read-only: a COPY over the store's own partition file is refused, the rows stay
    part = next((moved / "warehouse").rglob("*.parquet"))
    for statement in (
        f"COPY (SELECT * FROM patches WHERE false) TO '{part}' (FORMAT parquet)",
        f"ATTACH '{tmp_path / 'x.duckdb'}' AS x",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "SELECT 1; INSTALL spatial",
    ):
        code, _, err = _siscore(
            capsys, "sql", "--warehouse", str(moved / "warehouse.duckdb"), statement
        )
        assert code == 2 and "siscore sql is read-only" in err, (statement, err)
    assert not (tmp_path / "x.duckdb").exists()
    code, out, _ = _siscore(
        capsys, "sql", "--warehouse", str(moved / "warehouse.duckdb"), "--csv",
        "CREATE TEMP VIEW v AS SELECT count(*) AS n FROM patches; SELECT n FROM v",
    )  # fmt: skip
    assert code == 0 and out.splitlines() == ["n", "3"]


def test_country_add_appends_a_valid_entry_from_a_geopackage(tmp_path, monkeypatch, capsys):
    aoi = tmp_path / "aoi.gpkg"
    utm = gpd.GeoDataFrame(geometry=[shapely.box(127.3, 39.0, 127.4, 39.1)], crs=4326).to_crs(32652)
    utm.to_file(aoi)  # any CRS: UTM 52N here
    target = tmp_path / "mine" / "countries.yaml"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(target))
    code, out, err = _siscore(
        capsys,
        "country",
        "add",
        "KSN",
        "--years",
        "2016-2018",
        "--stac",
        "https://earth-search.aws.element84.com/v1",
        "--aoi",
        str(aoi),
    )
    assert code == 0, err
    # the tiles a STAC ingest fetches: every zoom-14 tile the AOI touches (grid.aoi_tiles)
    assert "42 zoom-14 tiles (42 on land) x 3 years" in out and "siscore countries" in out
    # 42 x 3 x 196,608 bytes of tile store; 42 x 262,144 of read records while a year is read
    assert "tile store ~0.0248 GB" in out and "read records need ~0.011 GB more" in out
    code, out, err = _siscore(capsys, "countries")
    assert code == 0 and "KSN: KSN; source stac; years 2016, 2017, 2018" in out, err
    assert "SYN" in out  # the packaged countries were copied, not replaced
    assert load_countries(target).get("KSN").pretrain == "kit"  # Stage 1 from the label kit
    before = target.read_text()
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=[shapely.Point(127.3, 39.0)], crs=4326).to_file(points)
    sea = tmp_path / "sea.geojson"  # the Yellow Sea, west of the Korean coast
    gpd.GeoDataFrame(geometry=[shapely.box(124.1, 37.0, 124.3, 37.2)], crs=4326).to_file(sea)
    for bad, problem in (
        (points, "must be polygons"),
        (tmp_path / "no.gpkg", "no such file"),
        (sea, "lies in the sea: none of its 143 zoom-14 tiles has its centre on land"),
    ):
        code, _, err = _siscore(
            capsys,
            "country",
            "add",
            "KSM",
            "--years",
            "2016",
            "--stac",
            "https://x.org",
            "--aoi",
            str(bad),
        )
        assert code == 2 and problem in err and len(err.splitlines()) == 1
    assert target.read_text() == before  # nothing half-written
    assert not (target.parent / "aoi" / "KSM.geojson").exists()
    # a coastal AOI (the Korean west coast near Haeju): added, its sea tiles counted apart
    code, out, err = _siscore(
        capsys,
        "country",
        "add",
        "KSC",
        "--years",
        "2016",
        "--stac",
        "https://x.org",
        "--bbox",
        "125.0,38.0,125.3,38.2",
    )
    assert code == 0 and "180 zoom-14 tiles (140 on land) x 1 year =" in out, err


def _add(capsys, code: str, *where: str) -> tuple[int, str, str]:
    return _siscore(
        capsys, "country", "add", code, "--years", "2016", "--stac", "https://x.org", *where
    )


def test_country_add_keeps_the_files_indent_refuses_an_aoi_across_180_and_leaves_nothing(
    tmp_path, monkeypatch, capsys
):
    """Found by review: a four-space countries file got a two-space entry (refused, naming a
    temporary file, its AOI left behind); an AOI across the 180th meridian became a band round
    the world (408,500 tiles for a 1 x 0.5 degree box near Fiji)."""
    target = tmp_path / "mine.yaml"
    packaged = (Path(__file__).parents[2] / "siscore_assets/config/countries.yaml").read_text()
    four = "\n".join(
        " " * (2 * (len(line) - len(line.lstrip(" ")))) + line.lstrip(" ")
        for line in packaged.splitlines()
    )
    target.write_text(four + "\n")
    assert load_countries(target).get("SYN")  # the packaged file, every level 4 spaces
    monkeypatch.setenv("SISCORE_COUNTRIES", str(target))
    code, out, err = _add(capsys, "KSC", "--bbox", "125.0,38.0,125.3,38.2")
    assert code == 0, err
    assert "\n    KSC:\n        name:" in target.read_text()
    assert load_countries(target).get("KSC").pretrain == "kit"
    fiji = tmp_path / "fiji.geojson"  # 179.5 E to 179.5 W, in the Fiji map grid (EPSG:3460)
    box = shapely.box(179.5, -17.0, 180.5, -16.5)
    gpd.GeoDataFrame(geometry=[box], crs=4326).to_crs(3460).to_file(fiji)
    before = target.read_text()
    code, _, err = _add(capsys, "FJI", "--aoi", str(fiji))
    assert code == 2 and "crosses the 180th meridian" in err and len(err.splitlines()) == 1
    # an entry the file refuses (its last section is not 'countries:'): no AOI left behind
    target.write_text(before + "notes: here\n")
    code, _, err = _add(capsys, "KSD", "--bbox", "125.0,38.0,125.3,38.2")
    assert code == 2 and str(target) in err and ".tmp" not in err, err
    assert not (tmp_path / "aoi" / "KSD.geojson").exists()
    assert target.read_text() == before + "notes: here\n"
    # an AOI file gone missing is found by `siscore countries`, not at the year's ingest
    target.write_text(before)
    aoi = tmp_path / "ksn.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(127.3, 39.0, 127.4, 39.1)], crs=4326).to_file(aoi)
    assert _add(capsys, "KSN", "--aoi", str(aoi))[0] == 0
    assert _siscore(capsys, "countries")[0] == 0
    (tmp_path / "aoi" / "KSN.geojson").rename(tmp_path / "elsewhere.geojson")
    code, _, err = _siscore(capsys, "countries")
    assert code == 2 and "AOI file not found" in err and "KSN.geojson" in err, err


def test_country_add_refuses_a_self_intersecting_aoi_and_writes_nothing(
    tmp_path, monkeypatch, capsys
):
    """Found by review: a bow-tie AOI was added, and `siscore countries` then refused it."""
    target = tmp_path / "mine.yaml"
    monkeypatch.setenv("SISCORE_COUNTRIES", str(target))
    bow = tmp_path / "bow.geojson"
    ring = [(102.0, 17.8), (102.8, 18.4), (102.8, 17.8), (102.0, 18.1), (102.0, 17.8)]
    gpd.GeoDataFrame(geometry=[shapely.Polygon(ring)], crs=4326).to_file(bow)
    code, _, err = _add(capsys, "BOW", "--aoi", str(bow))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{bow}: feature 0: invalid polygon (Self-intersection" in err, err
    assert not target.exists() and not (tmp_path / "aoi").exists()


class _Repo(http.server.SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).requested.append(self.path)
        super().do_GET()


def test_sample_nk_downloads_the_allowed_files_and_never_the_evaluation_ones(tmp_path, capsys):
    served = tmp_path / "served"
    files = {
        "data/NK/nk_2016/0/6259_13991.png": b"png1",
        "data/NK/nk_2017/0/6260_13990.png": b"png2",
        "data/nk_annotation/gis/1.png": b"img",
        "data/nk_annotation/labelling_result.csv": b"image_id,urban,rural,uninhabited\n1,0,0,1\n",
        "Stage2/POG_annotation/POG_collection.txt": b"1>0\n",
        "Stage2/POG_annotation/POG_annotators.txt": b"sat1\n",
        "Stage3/nk_NK_scores.csv": b"EVALUATION",
        "Materials/Codes/TableS5_S6_S7_ref/NK_gt_stats.csv": b"EVALUATION",
        "README.md": b"other",
    }
    for path, body in files.items():
        (served / "raw" / path).parent.mkdir(parents=True, exist_ok=True)
        (served / "raw" / path).write_bytes(body)
    tree = {"tree": [{"path": p, "type": "blob"} for p in files]}
    (served / "tree.json").write_text(json.dumps(tree))
    _Repo.requested = []
    handler = functools.partial(_Repo, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        counts = nk_sample.fetch(
            tmp_path / "nk", api=base + "tree.json", raw=base + "raw/", log=lambda _: None
        )
    finally:
        server.shutdown()
    assert counts == {"tiles": 2, "pretrain": 2, "annotations": 2}
    assert (tmp_path / "nk" / "tiles" / "2016" / "6259_13991.png").read_bytes() == b"png1"
    assert (tmp_path / "nk" / "annotations" / "pogs.txt").read_text() == "1>0\n"
    assert not any("Stage3" in r or "gt_stats" in r or "README" in r for r in _Repo.requested)
    assert not list(Path(tmp_path).glob(".nk.partial"))


def test_sample_nk_offline_is_one_line_naming_what_to_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SISCORE_SAMPLE_API", "http://127.0.0.1:9/tree.json")  # nothing listens
    code, out, err = _siscore(capsys, "sample", "nk", "--dest", str(tmp_path / "nk"))
    assert code == 2 and len(err.splitlines()) == 1
    assert "DonghyunAhn/development-measure" in err and str(tmp_path / "nk") in err
    assert not (tmp_path / "nk").exists()
