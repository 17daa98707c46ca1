"""`habitation` and `cluster_members` written batch by batch on tile keys (issue 26): the same rows
as the year-wide frames they replace, a tile twice in `habitation` or `patches` changing under the
stage refused, and a refused write leaving the earlier partition as it was."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.imagery import tile_blocks
from siscore_assets.core.imagery.patches import STATUS_OK
from siscore_assets.core.models import clustering
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.defs.clusters import tables as stage1_tables
from siscore_assets.defs.common import tile_rows
from siscore_assets.defs.common.resources import SiscoreSettings, Warehouse

YEARS = (2016, 2017)
CODE = "TST"


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """Two years of 8 px tiles (different subsets and orders of 30 places), `patches` rows in any
    file order with one unusable row, and `habitation` rows missing two tiles, some verdicts
    NULL; batches of 4 rows, so every table is written in many."""
    monkeypatch.setattr(tile_rows, "TILE_BATCH_ROWS", 4)
    rng = np.random.default_rng(3)
    wh = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    for k, year in enumerate(YEARS):
        places = rng.permutation(30)[: 27 - 5 * k]
        n = len(places)
        store = tile_blocks.store_stack(
            rng.integers(0, 255, (n, 8, 8, 3)).astype(np.uint8),
            tmp_path / "tiles" / str(year),
            rows_per_block=6,
        )
        rows = pd.DataFrame(
            {
                "country": CODE,
                "year": year,
                "tile_id": [f"15/{p}/{p % 4}" for p in places] + ["15/99/9"],
                "z": 15,
                "x": [int(p) for p in places] + [99],
                "y": [int(p) % 4 for p in places] + [9],
                "image_row": list(range(n)) + [-1],
                "status": [STATUS_OK] * n + ["cloudy"],
                "stack_path": str(store.folder),
            }
        )
        keys = {"country": CODE, "year": year}
        wh.write("patches", rows.sample(frac=1.0, random_state=year).reset_index(drop=True), keys)
        hab = rows.iloc[2:n][["country", "year", "tile_id", "z", "x", "y"]].assign(
            inhabited=[bool(p % 3) if p % 5 else None for p in places[2:]],
            urban=[bool(p % 2) for p in places[2:]],
        )
        wh.write("habitation", hab.sample(frac=1.0, random_state=1).reset_index(drop=True), keys)
    return SimpleNamespace(wh=wh, settings=SiscoreSettings(data_root=str(tmp_path)))


def usable(world, year: int) -> pd.DataFrame:
    """The year's usable `patches` rows in store order: the index the stages held before."""
    rows = world.wh.read("patches", {"country": CODE, "year": year}, order_by="image_row")
    return rows[rows["status"] == STATUS_OK].reset_index(drop=True)


def test_habitation_rows_are_the_year_wide_table(world):
    keys = {"country": CODE, "year": 2016}
    index = usable(world, 2016)
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], len(index)).astype(np.float32)
    order = tile_rows.year_order(world.wh, CODE, 2016)
    n = stage1_tables.write_habitation(
        world.wh, CODE, 2016, habitation_lib.habitation_columns(probs), order
    )
    got = world.wh.read("habitation", keys)
    want = habitation_lib.habitation_table(index, probs)
    assert n == len(index) == 27
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert 0 < got["inhabited"].sum() < n and got["urban"].sum() > 0


def test_a_refused_habitation_write_leaves_the_partition_as_it_was(world):
    keys = {"country": CODE, "year": 2017}
    before = world.wh.read("habitation", keys)
    order = tile_rows.year_order(world.wh, CODE, 2017)
    with pytest.raises(ValueError, match=r"TST\|2017: 21 habitation rows for 22 usable tiles"):
        stage1_tables.write_habitation(
            world.wh, CODE, 2017, habitation_lib.habitation_columns(np.full((21, 3), 1 / 3)), order
        )
    # `patches` re-materialised while the year was scored (same count, other tiles): refused
    patches = world.wh.read("patches", keys)
    moved = patches.assign(x=patches["x"] + 100, tile_id="15/" + patches["tile_id"])
    world.wh.write("patches", moved, keys)
    with pytest.raises(ValueError, match=r"TST\|2017: `patches` changed while 'habitation'"):
        stage1_tables.write_habitation(
            world.wh, CODE, 2017, habitation_lib.habitation_columns(np.full((22, 3), 1 / 3)), order
        )
    pd.testing.assert_frame_equal(world.wh.read("habitation", keys), before)


def _write_members(world, res, orders) -> int:
    """`cluster_members` spooled and committed as `write_clustering` does it."""
    with world.wh.spool("cluster_members", {"country": CODE}) as spool:
        stage1_tables.spool_members(world.wh, spool, CODE, YEARS, res, orders)
        return spool.commit()


def test_cluster_members_are_the_year_wide_table(world):
    tiles, images, orders = stage1_tables.country_tiles(world.settings, world.wh, CODE, YEARS)
    assert len(tiles) == len(images) == 27 + 22
    assert "tile_id" not in tiles and tiles["country"].iloc[0] == CODE
    # what the stage held before: every year's index merged with its habitation rows
    frames = []
    for y in YEARS:
        hab = world.wh.read("habitation", {"country": CODE, "year": y})
        frames.append(
            usable(world, y).merge(hab[["tile_id", "inhabited", "urban"]], on="tile_id", how="left")
        )
    landed = pd.concat(frames, ignore_index=True)
    inhabited = landed["inhabited"].fillna(False).to_numpy(bool)
    urban = landed["urban"].fillna(False).to_numpy(bool)
    assert np.array_equal(tiles["inhabited"].to_numpy(), inhabited)
    assert np.array_equal(tiles["urban"].to_numpy(), urban)
    labels = np.where(inhabited, np.arange(len(landed)) % 3, 3)
    want, summary = clustering.cluster_tables(landed, labels, 3, 1, inhabited, urban)
    light, light_summary = clustering.cluster_tables(tiles, labels, 3, 1, inhabited, urban)
    assert light is None
    pd.testing.assert_frame_equal(light_summary, summary)
    res = SimpleNamespace(labels=labels, inhabited=inhabited, urban=urban)
    assert _write_members(world, res, orders) == len(landed)
    got = world.wh.read("cluster_members", {"country": CODE})
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_tile_twice_or_patches_changed_is_refused_and_nothing_is_written(world):
    tiles, _, orders = stage1_tables.country_tiles(world.settings, world.wh, CODE, YEARS)
    flags = tiles["inhabited"].to_numpy(), tiles["urban"].to_numpy()
    res = SimpleNamespace(labels=np.zeros(len(tiles) + 1, np.int64), inhabited=flags[0])
    with pytest.raises(ValueError, match="TST: 50 tile-years clustered, 49 read"):
        _write_members(world, res, orders)
    keys = {"country": CODE, "year": 2017}
    patches = world.wh.read("patches", keys)
    world.wh.write("patches", patches.assign(y=patches["y"] + 1), keys)  # re-cut since
    res = SimpleNamespace(labels=np.zeros(len(tiles), np.int64), inhabited=flags[0], urban=flags[1])
    with pytest.raises(ValueError, match=r"TST\|2017: `patches` changed while 'cluster_members'"):
        _write_members(world, res, orders)
    assert world.wh.read("cluster_members", {"country": CODE}).empty
    hab = world.wh.read("habitation", keys)
    world.wh.write("habitation", pd.concat([hab, hab.iloc[:1]], ignore_index=True), keys)
    with pytest.raises(ValueError, match=r"TST\|2017: `habitation` holds a tile twice"):
        stage1_tables.country_tiles(world.settings, world.wh, CODE, YEARS)
    first = patches[patches["image_row"] == 0].iloc[0]
    twice = patches.assign(
        x=patches["x"].where(patches["image_row"] != 3, int(first["x"])),
        y=patches["y"].where(patches["image_row"] != 3, int(first["y"])),
    )
    world.wh.write("patches", twice, keys)
    with pytest.raises(ValueError, match=r"TST\|2017: `patches` holds a usable tile twice"):
        stage1_tables.country_tiles(world.settings, world.wh, CODE, YEARS)
