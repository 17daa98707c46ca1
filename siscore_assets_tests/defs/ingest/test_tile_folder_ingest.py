"""A tile-folder year through `granules` (spooled in batches) and `patches`: the tables hold
one row per file, in tile order, as the one-frame write did; misnamed and duplicate files are
'corrupt' rows of `patches`, never tiles of the store."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.storage import warehouse
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

COUNTRIES = """
default: TFI
countries:
  TFI:
    name: tiny tile-folder ingest
    years: [2019]
    source: {kind: tile_folder, root: "{root}", tiles: tiles, block_zoom: 13, store_px: 8}
    clusters: none
    pretrain: none
    annotations: none
    districts: none
    proxies: none
    covariates: none
"""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("tfi")
    sample = tmp_path / "sample"
    folder = sample / "tiles" / "2019"
    rng = np.random.default_rng(0)
    names = [f"{y}_{x}.png" for y in range(6259, 6262) for x in range(13990, 13993)]
    # z/x/y; the same tile as 6259_13990.png (kept: its path sorts first); misnamed
    names += ["14/13993/6259.png", "14/13990/6259.png", "holiday.png"]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 200, (16, 16, 3), dtype=np.uint8)).save(folder / name)
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{root}", str(sample)))
    defs, db = definitions_for(countries, tmp_path)
    instance = DagsterInstance.ephemeral()
    batches: list[int] = []
    real = tf.inventory_batches

    def small_batches(files, code, year, rows=None):
        for frame in real(files, code, year, rows=4):  # several batches, even on 10 files
            batches.append(len(frame))
            yield frame

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf, "inventory_batches", small_batches)
        for asset in ("granules", "patches"):
            assert materialize(
                list(defs.assets),
                selection=select(asset),
                partition_key=country_year_key("TFI", 2019),
                resources=defs.resources,
                instance=instance,
            ).success
    return db, folder, batches


def test_granules_spooled_in_batches_equal_the_one_frame(ingested):
    db, folder, batches = ingested
    assert batches == [4, 4, 2]
    keys = {"country": "TFI", "year": 2019}
    rows = warehouse.read(db, "granules", keys)
    files, problems = tf.list_year_tiles(folder, 14)
    expected = pd.DataFrame(
        {
            "country": "TFI",
            "year": 2019,
            "granule_id": [f.stem for f in files],
            "path": [f.file for f in files],
            "tile_x0": [f.tile.x for f in files],
            "tile_y0": [f.tile.y for f in files],
            "tiles_x": 1,
            "tiles_y": 1,
        }
    )
    assert len(rows) == 10 and len(problems) == 2  # 9 + the z/x/y tile; duplicate, misnamed
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
    assert rows["tile_x0"].tolist()[:3] == [13990, 13990, 13990]  # tile order: x, then y


def test_patches_index_every_file_once(ingested):
    db, _, _ = ingested
    rows = warehouse.read(db, "patches", {"country": "TFI", "year": 2019})
    assert len(rows) == 12 and rows["tile_id"].dropna().is_unique
    assert (rows["status"] == "ok").sum() == 10
    bad = rows[rows["status"] == "corrupt"].sort_values("source_path")
    assert [p.rsplit("/", 1)[-1] for p in bad["source_path"]] == ["6259_13990.png", "holiday.png"]
    assert "already read from 6259.png" in bad["problem"].iloc[0]
