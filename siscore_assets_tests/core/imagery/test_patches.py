import numpy as np
import pytest
import rasterio

from siscore_assets.core.imagery import granules, preview
from siscore_assets.core.imagery import patches as imagery
from siscore_assets.core.imagery.grid import Tile, block_bounds_3857


def _scene(nx: int, ny: int, px: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(ny * px, nx * px, 3), dtype=np.uint8)


def test_granules_are_georeferenced_on_tile_edges(tmp_path):
    scene = _scene(4, 3, 16)
    infos = granules.split_scene(scene, 14, 13903, 6163, 4, 3, 16, 2, tmp_path)
    assert len(infos) == 4  # 2x2 granules (the last row/column ones are partial)
    with rasterio.open(infos[0].path) as src:
        assert src.crs.to_epsg() == 3857
        assert tuple(src.bounds) == pytest.approx(block_bounds_3857(14, 13903, 6163, 2, 2))


def test_patches_round_trip_the_scene(tmp_path):
    scene = _scene(4, 3, 16)
    infos = granules.split_scene(scene, 14, 13903, 6163, 4, 3, 16, 2, tmp_path)
    index, stack = imagery.cut_patches([g.path for g in infos], 14)
    assert len(index) == 12 and (index["status"] == "ok").all()
    row = index[(index["x"] == 13905) & (index["y"] == 6164)].iloc[0]
    np.testing.assert_array_equal(stack[row["image_row"]], scene[16:32, 32:48])
    assert row["tile_id"] == "14/13905/6164"
    assert (row["left"], row["top"]) == pytest.approx(Tile(14, 13905, 6164).bounds_3857()[0::3])


def test_blank_and_corrupt_input_is_reported_not_scored(tmp_path):
    scene = _scene(2, 1, 16)
    scene[:, :16] = 0  # a nodata-filled tile
    infos = granules.split_scene(scene, 14, 13903, 6163, 2, 1, 16, 2, tmp_path)
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    index, stack = imagery.cut_patches([g.path for g in infos] + [tmp_path / "broken.tif"], 14)
    status = dict(zip(index["granule_id"] + ":" + index["x"].astype(str), index["status"]))
    assert status["g_13903_6163:13903"] == "blank"
    assert status["g_13903_6163:13904"] == "ok"
    assert status["broken:-1"] == "corrupt"
    assert len(stack) == 1  # only the usable tile is in the stack
    assert "broken.tif" in index.loc[index["status"] == "corrupt", "problem"].iloc[0]


def test_cloudy_tiles_are_reported_with_their_cover(tmp_path):
    scene = _scene(2, 1, 16)
    scene[:, 16:] = 238  # a tile under thick cloud (near-white, colourless)
    scene[:4, 16:] = 90
    infos = granules.split_scene(scene, 14, 13903, 6163, 2, 1, 16, 2, tmp_path)
    index, stack = imagery.cut_patches([g.path for g in infos], 14, max_cloud=0.15)
    row = index[index["x"] == 13904].iloc[0]
    assert row["status"] == "cloudy" and "cloud cover 0.75" in row["problem"]
    assert len(stack) == 1
    assert imagery.cloud_fraction(scene[:, :16]) < 0.05  # random colour noise is not cloud


def test_contact_sheet_layout():
    imgs = np.full((10, 4, 4, 3), 7, np.uint8)
    sheet = preview.contact_sheet(imgs, cols=4, pad=1)
    assert sheet.shape == (3 * 5 + 1, 4 * 5 + 1, 3)
