"""``countries_check``: what a countries file names, checked when the file is used (found by
review: tiles named ``<x>_<y>`` placed every tile in Antarctica, and a keyword misspelt as
``clusters: k-means`` passed the check and failed at Stage 1 hours later)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siscore_assets.core.countries import CountriesFileError, load_countries
from siscore_assets.core.countries_check import check_countries
from siscore_assets_tests.conftest import SHARED_NK

#: Kosan, North Korea: zoom-14 tiles x 13985..13994, y 6259..6268 (the NK sample's area).
XS, YS = range(13985, 13995), range(6259, 6269)
KOSAN_BBOX = "[127.2, 38.9, 127.6, 39.2]"


def _tiles(root: Path, name, years=(2016,)) -> None:
    """A year folder per year, one (empty: only names are read) file per Kosan tile."""
    for year in years:
        for x in XS:
            for y in YS:
                path = root / "tiles" / str(year) / name(x, y)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"png")


def _countries(tmp_path: Path, root: Path, extra: str = "") -> Path:
    path = tmp_path / "countries.yaml"
    path.write_text(
        "countries:\n  KSN:\n    years: [2016]\n"  # lines 1-3
        f"{extra}"
        f"    source:\n      kind: tile_folder\n      root: {root}\n      tiles: tiles\n"
    )
    return path


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_tiles_named_in_the_usual_order_pass_with_and_without_a_bbox(tmp_path):
    _tiles(tmp_path / "root", lambda x, y: f"{y}_{x}.png")
    check_countries(load_countries(_countries(tmp_path, tmp_path / "root")))
    bbox = f"    bbox: {KOSAN_BBOX}\n"
    check_countries(load_countries(_countries(tmp_path, tmp_path / "root", bbox)))


@pytest.mark.parametrize("bbox", [True, False], ids=["bbox", "no bbox"])
def test_tiles_named_x_y_are_refused_at_source_tiles(tmp_path, bbox):
    _tiles(tmp_path / "root", lambda x, y: f"{x}_{y}.png")
    extra = f"    bbox: {KOSAN_BBOX}\n" if bbox else ""
    path = _countries(tmp_path, tmp_path / "root", extra)
    with pytest.raises(CountriesFileError) as err:
        check_countries(load_countries(path))
    message = str(err.value)
    assert message.startswith(f"{path}:{_line(path, 'tiles: tiles')}: country KSN: "), message
    assert "tiles of 2016 centre at lon -42." in message and "lat -77." in message, message
    assert ("outside the bbox" if bbox else "in the sea") in message, message
    assert "named <x>_<y>? expected <y>_<x>" in message and "13985_6259.png" in message, message
    assert "\n" not in message


def test_z_x_y_tiles_named_z_y_x_are_refused(tmp_path):
    _tiles(tmp_path / "root", lambda x, y: f"14/{y}/{x}.png")
    path = _countries(tmp_path, tmp_path / "root")
    with pytest.raises(CountriesFileError, match=r"named <z>/<y>/<x>\? expected <z>/<x>/<y>"):
        check_countries(load_countries(path))
    _tiles(tmp_path / "good", lambda x, y: f"14/{x}/{y}.png")
    check_countries(load_countries(_countries(tmp_path, tmp_path / "good")))


def test_tiles_at_sea_pass_inside_their_bbox_and_are_refused_without_one(tmp_path):
    """A country at sea (an offshore test block) names its bbox; without one, the sea is
    refused, and a reading that does not land either is not blamed on the names' order."""
    root = tmp_path / "sea"
    folder = root / "tiles" / "2016"
    folder.mkdir(parents=True)
    for x in range(8000, 8004):  # the Gulf of Guinea off Abidjan: sea either way round
        for y in range(8000, 8004):
            (folder / f"{y}_{x}.png").write_bytes(b"png")
    with pytest.raises(CountriesFileError, match="in the sea") as err:
        check_countries(load_countries(_countries(tmp_path, root)))
    assert "named <x>_<y>" not in str(err.value) and "zoom (14)" in str(err.value)
    check_countries(
        load_countries(_countries(tmp_path, root, "    bbox: [-4.5, 3.8, -3.8, 4.5]\n"))
    )


def test_tiles_outside_the_zoom_grid_are_refused(tmp_path):
    _tiles(tmp_path / "root", lambda x, y: f"{4 * y}_{4 * x}.png")  # zoom-16 ids
    path = _countries(tmp_path, tmp_path / "root")
    with pytest.raises(CountriesFileError, match="outside the zoom-14 grid"):
        check_countries(load_countries(path))


@pytest.mark.skipif(not (SHARED_NK / "tiles").is_dir(), reason="no NK sample here")
def test_the_nk_sample_passes(tmp_path, monkeypatch):
    monkeypatch.delenv("SISCORE_PRK_ROOT", raising=False)
    check_countries(load_countries(_countries(tmp_path, SHARED_NK)))
    check_countries(load_countries(), ["PRK"])


@pytest.mark.parametrize(
    ("setting", "keywords"),
    [("clusters: k-means", "kmeans, deepcluster"), ("pretrain: kits", "generated, kit")],
)
def test_a_misspelt_keyword_is_refused_as_a_folder_not_found(
    tmp_path, monkeypatch, setting, keywords
):
    monkeypatch.chdir(tmp_path)
    _tiles(tmp_path / "root", lambda x, y: f"{y}_{x}.png")
    path = _countries(tmp_path, tmp_path / "root", f"    {setting}\n")
    key, value = setting.split(": ")
    with pytest.raises(CountriesFileError) as err:
        check_countries(load_countries(path))
    message = str(err.value)
    assert message.startswith(f"{path}:4: country KSN: {key} folder not found: {value} "), message
    assert f"(tried {tmp_path / value}, " in message, message
    assert f"{key} is {keywords} or a folder" in message, message


def test_keywords_are_not_folders(tmp_path):
    _tiles(tmp_path / "root", lambda x, y: f"{y}_{x}.png")
    for setting in ("clusters: deepcluster", "pretrain: kit", "clusters: kmeans"):
        check_countries(load_countries(_countries(tmp_path, tmp_path / "root", f"    {setting}\n")))
