"""The compact listing of a year's tile files gives what the per-file objects gave (same files,
order, problems, `granules` rows and blocks), at a fraction of the memory."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.imagery import tile_blocks
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.imagery.grid import Tile, parse_tile_id
from siscore_assets.core.imagery.tile_listing import TileFile, TileListing, list_tiles


def _messy(root: Path) -> Path:
    """Both layouts, duplicates across them, misnamed files, another zoom, hidden and non-image
    files, and directory names that sort differently as text than as path parts."""
    folder = root / "2019"

    def touch(rel: str) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")

    for y in range(6259, 6262):
        for x in range(13990, 13994):
            touch(f"{y}_{x}.png")
    for rel in (
        "14/13990/6259.png",  # the same tile as 06259_13990.png / 6259_13990.png
        "14/13990/6300.png",
        "14/13991/6259.PNG",
        "13/100/100.png",  # another zoom
        "holiday_photo.png",
        "notes.txt",
        ".hidden.png",
        "a-b/6259_13990.png",
        "a/6259_13990.png",
        "06259_13990.png",  # sorts first: the copy of 14/13990/6259 that is kept
        "6259_13990.jpg",
        "14/abc/1.png",
        "0_99999999.png",  # outside the grid
        "6301_13990.tif",
        "noext",
    ):
        touch(rel)
    return folder


def _reference(folder: Path, zoom: int) -> tuple[list[tuple[Tile, str]], list[dict]]:
    """The listing as the per-file code made it: sorted path parts, first copy of a tile kept,
    files in tile order."""
    walked = sorted(
        (p.relative_to(folder).parts, os.path.join(str(folder), *p.relative_to(folder).parts))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    found: dict[Tile, str] = {}
    problems = []
    for parts, file in walked:
        name = parts[-1]
        suffix = os.path.splitext(name)[1]
        if suffix.lower() not in tf.IMAGE_SUFFIXES:
            continue
        stem = (*parts[:-1], name[: len(name) - len(suffix)])
        try:
            if len(stem) == 1:
                tile = parse_tile_id(stem[0], zoom)
            elif len(stem) == 3 and all(s.isdigit() for s in stem):
                tile = parse_tile_id("/".join(stem), zoom)
            else:
                raise ValueError(f"expected <y>_<x>.png or <z>/<x>/<y>.png, got {'/'.join(stem)}")
            if tile.z != zoom:
                raise ValueError(f"tile zoom {tile.z} but the country's grid is zoom {zoom}")
        except ValueError as exc:
            problems.append({"path": file, "problem": f"{name}: {exc}"})
            continue
        if tile in found:
            kept = os.path.basename(found[tile])
            problems.append(
                {"path": file, "problem": f"{name}: tile {tile.tile_id} already read from {kept}"}
            )
            continue
        found[tile] = file
    return sorted(found.items()), problems


def test_listing_matches_the_per_file_listing(tmp_path):
    folder = _messy(tmp_path)
    files, problems = list_tiles(folder, 14)
    expected, expected_problems = _reference(folder, 14)
    assert [(f.tile, f.file) for f in files] == expected and len(files) == 14
    assert problems == expected_problems and len(problems) == 10
    dup = [p for p in problems if p["path"].endswith("14/13990/6259.png")]
    assert dup[0]["problem"].endswith("already read from 06259_13990.png")
    assert all(os.path.exists(f.file) for f in files)
    assert tf.list_year_tiles(folder, 14)[1] == problems  # the tile-folder entry point


def test_slices_take_and_pickle_stay_compact(tmp_path):
    files, _ = list_tiles(_messy(tmp_path), 14)
    part = files[3:7]
    assert isinstance(part, TileListing) and [f.file for f in part] == [
        files[i].file for i in range(3, 7)
    ]
    picked = files.take(np.array([5, 0]))
    assert [f.tile for f in picked] == [files[5].tile, files[0].tile]
    assert files[-1].file == files[len(files) - 1].file
    back = pickle.loads(pickle.dumps(part))
    assert [(f.tile, f.file) for f in back] == [(f.tile, f.file) for f in part]
    assert back.stems() == [f.stem for f in part] and back.paths() == [f.file for f in part]
    # a block's task carries three arrays, not an object per file
    many = TileListing(
        files.folder,
        14,
        np.repeat(files.rel[:1], 10_000),
        np.arange(10_000, dtype=np.int64),
        np.zeros(10_000, np.int64),
    )
    assert len(pickle.dumps(many)) < 40 * 10_000


def test_of_keeps_absolute_paths(tmp_path):
    files = [TileFile(Tile(14, 1, 2), str(tmp_path / "a" / "2_1.png"))]
    listing = TileListing.of(files)
    assert [(f.tile, f.file) for f in listing] == [(files[0].tile, files[0].file)]
    with pytest.raises(ValueError, match="several zooms"):
        TileListing.of([*files, TileFile(Tile(13, 1, 2), "b.png")])


def test_inventory_batches_join_to_the_one_frame(tmp_path):
    files, _ = list_tiles(_messy(tmp_path), 14)
    joined = pd.concat(list(tf.inventory_batches(files, "SCL", 2019, rows=5)), ignore_index=True)
    expected = pd.DataFrame(
        {
            "country": "SCL",
            "year": 2019,
            "granule_id": [f.stem for f in files],
            "path": [f.file for f in files],
            "tile_x0": np.array([f.tile.x for f in files], np.int64),
            "tile_y0": np.array([f.tile.y for f in files], np.int64),
            "tiles_x": 1,
            "tiles_y": 1,
        }
    )
    pd.testing.assert_frame_equal(joined, expected)


@pytest.mark.parametrize("block_zoom", [9, 12, 13, 14])
def test_blocks_as_the_per_file_grouping(tmp_path, block_zoom):
    files, _ = list_tiles(_messy(tmp_path), 14)
    groups: dict[str, list[TileFile]] = {}
    for f in files:
        name = tile_blocks.block_name(f.tile.x, f.tile.y, f.tile.z, block_zoom)
        groups.setdefault(name, []).append(f)
    expected = [
        (name, [(f.tile, f.file) for f in sorted(groups[name], key=lambda f: (f.tile.y, f.tile.x))])
        for name in sorted(groups)
    ]
    plan = tile_blocks.plan_blocks(files, block_zoom)
    assert [(name, [(f.tile, f.file) for f in g]) for name, g in plan] == expected
    assert all(isinstance(g, TileListing) for _, g in plan)
    as_list = tile_blocks.plan_blocks(list(files), block_zoom)  # a plain list of files too
    assert [(n, [f.file for f in g]) for n, g in as_list] == [
        (n, [f for _, f in g]) for n, g in expected
    ]
    assert tile_blocks.plan_blocks(files[:0], block_zoom) == []
