"""Tile-folder imagery source: layouts, georeferencing from ids, bad tiles reported and skipped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siscore_assets.core.countries import CountryConfigError, parse_countries
from siscore_assets.core.imagery import patches as imagery
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.imagery.grid import Tile


def _png(path: Path, seed: int, px: int = 32, value: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = (
        np.full((px, px, 3), value, np.uint8)
        if value is not None
        else rng.integers(30, 180, (px, px, 3), dtype=np.uint8)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return img


@pytest.fixture
def year_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tiles" / "2018"
    _png(folder / "6259_13990.png", 1)
    _png(folder / "6259_13991.png", 2)
    _png(folder / "14" / "13992" / "6260.png", 3)  # the z/x/y layout, mixed in
    _png(folder / "6260_13990.png", 4, value=0)  # blank: nodata fill
    (folder / "6260_13991.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")  # corrupt
    _png(folder / "holiday_photo.png", 5)  # not a tile id
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_both_layouts_georeferenced_from_ids(year_folder: Path) -> None:
    files, problems = tf.list_year_tiles(year_folder, 14)
    tiles = {f.tile for f in files}
    assert Tile(14, 13990, 6259) in tiles and Tile(14, 13992, 6260) in tiles
    assert len(files) == 5
    assert [p["path"].endswith("holiday_photo.png") for p in problems] == [True]
    assert "expected" in problems[0]["problem"] or "not a tile id" in problems[0]["problem"]


def test_corrupt_and_blank_tiles_reported_and_never_in_the_stack(year_folder: Path) -> None:
    files, problems = tf.list_year_tiles(year_folder, 14)
    index, stack = tf.cut_tile_folder(
        files, 14, max_cloud=imagery.DEFAULT_MAX_CLOUD, problems=problems
    )
    by_id = index.set_index("granule_id")
    assert by_id.loc["6260_13990", "status"] == imagery.STATUS_BLANK
    assert by_id.loc["6260_13991", "status"] == imagery.STATUS_CORRUPT
    assert "cannot decode" in by_id.loc["6260_13991", "problem"]
    assert by_id.loc["holiday_photo", "status"] == imagery.STATUS_CORRUPT
    ok = index[index["status"] == imagery.STATUS_OK]
    assert len(ok) == 3 and len(stack) == 3
    assert sorted(ok["image_row"]) == [0, 1, 2]
    assert (index.loc[index["status"] != imagery.STATUS_OK, "image_row"] == -1).all()
    # Exact tile bounds from the id (EPSG:3857) and a lon/lat centre for analysts.
    row = index[index["tile_id"] == "14/13990/6259"].iloc[0]
    assert (row["left"], row["bottom"], row["right"], row["top"]) == pytest.approx(
        Tile(14, 13990, 6259).bounds_3857()
    )
    assert row["lon"] == pytest.approx(127.40, abs=0.02)


def test_duplicate_tile_in_two_layouts_is_a_problem(tmp_path: Path) -> None:
    folder = tmp_path / "2017"
    _png(folder / "6259_13990.png", 1)
    _png(folder / "14" / "13990" / "6259.png", 2)
    files, problems = tf.list_year_tiles(folder, 14)
    assert len(files) == 1 and "already read" in problems[0]["problem"]


def test_a_tile_of_another_size_is_wrong_size_not_resampled(tmp_path: Path) -> None:
    folder = tmp_path / "2016"
    _png(folder / "6259_13990.png", 1, px=32)
    _png(folder / "6259_13991.png", 2, px=64)
    files, _ = tf.list_year_tiles(folder, 14)
    index, stack = tf.cut_tile_folder(files, 14, max_cloud=1.0)
    assert stack.shape == (1, 32, 32, 3)
    assert index["status"].tolist() == ["ok", tf.STATUS_WRONG_SIZE]


def _country(root: str, env: str | None = None):
    src = {"kind": "tile_folder", "root": root}
    if env:
        src["root_env"] = env
    reg = parse_countries(
        {
            "countries": {
                "PRK": {
                    "years": [2016],
                    "source": src,
                    "clusters": "{root}/clusters",
                    "annotations": "{root}/annotations",
                }
            }
        },
        "test.yaml",
    )
    return reg.get("PRK")


def test_source_root_env_wins_and_missing_root_is_a_clear_error(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "alt").mkdir()
    monkeypatch.setenv("SISCORE_TEST_ROOT", str(tmp_path / "alt"))
    country = _country("does/not/exist", env="SISCORE_TEST_ROOT")
    assert tf.source_root(country) == tmp_path / "alt"
    assert country.annotation_folder(tmp_path) == tmp_path / "alt" / "annotations"
    assert country.clusters_from_folder
    monkeypatch.delenv("SISCORE_TEST_ROOT")
    with pytest.raises(CountryConfigError, match="imagery folder not found.*SISCORE_TEST_ROOT"):
        tf.source_root(country)


def test_cluster_folder_reads_numeric_ids_and_reports_bad_images(tmp_path: Path) -> None:
    for c in (0, 1, 10):
        for n in (1, 2, 10):
            _png(tmp_path / "clusters" / str(c) / f"{n}.png", c * 100 + n, px=64)
    (tmp_path / "clusters" / "1" / "3.png").write_bytes(b"garbage")
    (tmp_path / "clusters" / "README").mkdir()
    by_cluster, problems = tf.read_cluster_folder(tmp_path / "clusters", px=32)
    assert sorted(by_cluster) == [0, 1, 10]
    assert by_cluster[0].shape == (3, 32, 32, 3)
    assert len(problems) == 1 and problems[0]["path"].endswith("3.png")


def test_a_cluster_image_of_another_size_is_reported_and_skipped(tmp_path: Path) -> None:
    """Read as they are (no ``px``), one odd image crashed numpy's stack naming no file."""
    for c in (0, 1):
        for n in (1, 2):
            _png(tmp_path / "clusters" / str(c) / f"{n}.png", c * 10 + n, px=32)
    _png(tmp_path / "clusters" / "1" / "3.png", 99, px=64)
    by_cluster, problems = tf.read_cluster_folder(tmp_path / "clusters")
    assert by_cluster[1].shape == (2, 32, 32, 3)
    odd = "3.png is 64x64 px, the cluster images are 32x32 px"
    assert [p["problem"] for p in problems] == [odd]


def test_pretrain_folder_soft_labels_and_errors_name_the_line(tmp_path: Path) -> None:
    folder = tmp_path / "pretrain"
    for i in (1, 5):
        _png(folder / "images" / f"{i}.png", i)
    (folder / "labels.csv").write_text(
        "image_id,urban,rural,uninhabited\n1,0.0,0.25,0.75\n5,0,0,1\n"
    )
    images, labels, ids = tf.read_pretrain_folder(folder, px=16)
    assert images.shape == (2, 16, 16, 3) and ids == ["1", "5"]
    assert np.allclose(labels.sum(axis=1), 1.0)
    (folder / "labels.csv").write_text("image_id,urban,rural,uninhabited\n1,0,1,0\n9,0,0,1\n")
    with pytest.raises(FileNotFoundError, match=r"labels.csv:3: image .*9.png not found"):
        tf.read_pretrain_folder(folder)
    (folder / "labels.csv").write_text("image_id,urban,rural,uninhabited\n1,x,1,0\n")
    with pytest.raises(ValueError, match=r"labels.csv:2: bad label value"):
        tf.read_pretrain_folder(folder)


@pytest.mark.parametrize(
    "rows, problem",
    [
        ("1,1,0,0\n5,nan,0,1\n", r"labels.csv:3: .*finite"),
        ("1,1,0,0\n5,inf,0,0\n", r"labels.csv:3: .*finite"),
        ("1,0,0,-inf\n", r"labels.csv:2: "),
        ("1,1,0,0\n5,0,1,0\n1,0,0,1\n", r"labels.csv:4: image 1 already labelled on line 2"),
    ],
)
def test_pretrain_labels_refuse_non_finite_shares_and_a_repeated_image(
    tmp_path: Path, rows: str, problem: str
) -> None:
    """A NaN or infinite share (an all-NaN soft label once normalised) and an image labelled
    twice are errors naming the line, as in the tile-label layout (found by review)."""
    folder = tmp_path / "pretrain"
    for i in (1, 5):
        _png(folder / "images" / f"{i}.png", i)
    (folder / "labels.csv").write_text("image_id,urban,rural,uninhabited\n" + rows)
    with pytest.raises(ValueError, match=problem):
        tf.read_pretrain_folder(folder)


# ---- the real North Korea sample (skipped where ../shared is absent) ---------------------------

from siscore_assets_tests.conftest import SHARED_NK  # noqa: E402

needs_nk = pytest.mark.skipif(not SHARED_NK.is_dir(), reason="../shared/data/nk_sample not present")


@needs_nk
def test_packaged_prk_reads_the_real_sample(monkeypatch) -> None:
    from siscore_assets.core import ranking as pog
    from siscore_assets.core.countries import load_countries

    monkeypatch.delenv("SISCORE_PRK_ROOT", raising=False)
    prk = load_countries().get("PRK")
    assert load_countries().default == "SYN" and prk.years == (2016, 2017, 2018, 2019)
    assert tf.source_root(prk).resolve() == SHARED_NK.resolve()
    files, problems = tf.list_year_tiles(tf.tiles_dir(prk) / "2019", prk.zoom)
    assert len(files) == 97 and not problems
    assert all(f.path.stem == f.tile.yx_name for f in files)  # <y>_<x>: row, column
    found = pog.read_annotation_folder(
        prk.annotation_folder(Path("data")), known_ids=list(range(22))
    )
    assert len(found) == 10 and not prk.has_layer("proxies")


@pytest.mark.slow
@needs_nk
def test_short_training_on_the_real_clusters() -> None:
    from siscore_assets.core import ranking as pog
    from siscore_assets.core.countries import load_countries
    from siscore_assets.core.model_settings import ModelSettings
    from siscore_assets.core.models.evaluation import scorer_cluster_fit
    from siscore_assets.core.models.scorer_training import TrainingInputs, train_scorer

    prk = load_countries().get("PRK")
    by_cluster, problems = tf.read_cluster_folder(prk.resolve(prk.clusters), px=16)
    assert (
        sorted(by_cluster) == list(range(22))
        and all(len(v) == 50 for v in by_cluster.values())
        and not problems
    )
    found = pog.read_annotation_folder(
        prk.annotation_folder(Path("data")), known_ids=list(range(22))
    )
    tiers = pog.ensemble(list(found.values()), list(range(22)), names=list(found)).tiers
    rank = pog.tier_ranks(tiers)
    train = {c: v[:40] for c, v in by_cluster.items()}
    held = {c: v[40:] for c, v in by_cluster.items()}
    m = ModelSettings(
        steps=6,
        per_tier=1,
        input_px=16,
        grayscale=True,
        normalize="per_image",
        sampling="cluster",
        eval_every=3,
    )
    data = TrainingInputs(
        train, pog.Pog.from_tiers(tiers).tier_paths(), val=held, cluster_rank=rank
    )
    model, hist = train_scorer(data, m, seed=0)
    fit, rho = scorer_cluster_fit(model, held, rank)
    assert len(fit) == 22 and np.isfinite(rho)
    assert sum(h.get("selected", False) for h in hist) == 1


def test_a_tile_of_the_wrong_size_and_an_empty_file_are_reported_not_stored(tmp_path):
    """A 128 px tile among 256 px ones is 'wrong_size' (never upscaled into the store); a 0-byte
    file is 'empty', not 'cannot identify image file'."""
    from siscore_assets.core.imagery.grid import Tile
    from siscore_assets.core.imagery.tile_folder import (
        STATUS_EMPTY,
        STATUS_WRONG_SIZE,
        TileFile,
        decode_tile,
    )

    rng = np.random.default_rng(0)
    big, small, empty = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(rng.integers(0, 200, (256, 256, 3), dtype=np.uint8)).save(big)
    Image.fromarray(rng.integers(0, 200, (128, 128, 3), dtype=np.uint8)).save(small)
    empty.write_bytes(b"")
    tile = Tile(14, 13990, 6260)
    row, img = decode_tile(TileFile(tile, str(big)), 14, max_cloud=0.5, px=256)
    assert row["status"] == "ok" and img.shape == (256, 256, 3)
    row, img = decode_tile(TileFile(tile, str(small)), 14, max_cloud=0.5, px=256)
    assert row["status"] == STATUS_WRONG_SIZE and img is None and "128x128" in row["problem"]
    row, img = decode_tile(TileFile(tile, str(small)), 14, max_cloud=0.5, px=64, native_px=256)
    assert row["status"] == STATUS_WRONG_SIZE and img is None
    row, img = decode_tile(TileFile(tile, str(empty)), 14, max_cloud=0.5, px=256)
    assert row["status"] == STATUS_EMPTY and row["problem"].endswith("empty file (0 bytes)")


def _textured(px: int = 64) -> np.ndarray:
    """A smooth tile (JPEG keeps it close): ramps from 40 to 160, never near-black nor cloudy."""
    ramp = np.linspace(40, 160, px).astype(np.uint8)
    img = np.full((px, px, 3), 90, np.uint8)
    img[..., 0], img[..., 1] = ramp[None, :], ramp[:, None]
    return img


@pytest.mark.parametrize(
    "name, fill, rows, status, problem",
    [
        ("a.png", (0, 0, 0), 48, "blank", r"^a.png: no data \(near-black\) over 75% of the tile$"),
        ("b.png", (8, 3, 0), 48, "blank", r"^b.png: no data \(near-black\) over 75%"),
        ("c.jpg", (0, 0, 0), 62, "blank", r"^c.jpg: no data \(near-black\) over 9\d% of the tile$"),
        ("d.png", (9, 0, 0), 48, "ok", None),  # above the black level: imagery
        ("e.png", (0, 0, 0), 16, "ok", None),  # a quarter black: under MAX_NODATA_SHARE
    ],
)
def test_black_no_data_without_alpha_is_blank_like_transparent(
    tmp_path: Path, name: str, fill: tuple, rows: int, status: str, problem: str | None
) -> None:
    """Found by review: no-data written as black (a JPEG tile has no alpha band; an RGB PNG
    export) was stored and scored, while a STAC tile with over half no-data is 'blank'."""
    img = _textured()
    img[:rows] = fill
    Image.fromarray(img).save(tmp_path / name, quality=90)
    row, out = tf.decode_tile(
        tf.TileFile(Tile(14, 13990, 6259), str(tmp_path / name)), 14, max_cloud=0.15, native_px=64
    )
    assert row["status"] == status
    if problem:
        assert out is None and re.search(problem, row["problem"])
    else:
        assert out is not None and row["problem"] is None


def test_transparent_and_black_no_data_add_up(tmp_path: Path) -> None:
    """31 % transparent and 31 % opaque black: 62 % no data, 'blank' (each alone is under half);
    transparent pixels stored as black are counted once, and a tile of them is still named
    'transparent'."""
    rgba = np.concatenate([_textured(), np.full((64, 64, 1), 255, np.uint8)], axis=2)
    rgba[:20] = 0  # transparent black rows
    rgba[20:40, :, :3] = 0  # opaque black rows
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mixed.png")
    rgba[20:40] = 0  # all of them transparent now
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    tile = Tile(14, 13990, 6259)
    row, out = tf.decode_tile(tf.TileFile(tile, str(tmp_path / "mixed.png")), 14, max_cloud=0.15)
    assert row["status"] == "blank" and out is None
    assert row["problem"] == "mixed.png: no data (transparent and near-black) over 62% of the tile"
    row, out = tf.decode_tile(tf.TileFile(tile, str(tmp_path / "alpha.png")), 14, max_cloud=0.15)
    assert row["problem"] == "alpha.png: no data (transparent) over 62% of the tile"


def test_pretrain_images_of_mixed_sizes_name_the_first_odd_one(tmp_path: Path) -> None:
    """Found by review: without ``px`` a 512 px image among 256 px ones failed in numpy ('all
    input arrays must have the same shape') naming no file."""
    folder = tmp_path / "pretrain"
    _png(folder / "images" / "1.png", 1, px=32)
    _png(folder / "images" / "2.png", 2, px=32)
    _png(folder / "images" / "5.png", 5, px=64)
    (folder / "labels.csv").write_text(
        "image_id,urban,rural,uninhabited\n1,0,1,0\n2,1,0,0\n5,0,0,1\n"
    )
    with pytest.raises(
        ValueError, match=r"labels.csv:4: 5.png is 64x64 px, earlier images are 32x32 px$"
    ):
        tf.read_pretrain_folder(folder)
    images, _, _ = tf.read_pretrain_folder(folder, px=16)  # one size asked for: resampled
    assert images.shape == (3, 16, 16, 3)
