"""Map assets on a warehouse we fill directly (no training): checks pass, files land, and a
country without granules gets one overlay over its scored extent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from dagster import DagsterInstance, materialize

from siscore_assets.core.imagery.grid import Tile, block_bounds_3857
from siscore_assets.core.maps import mosaic
from siscore_assets.core.storage import warehouse as wh
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

X0, Y0 = 13903, 6163


def _grid(year: int, n: int = 9, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(2, 2 + n), np.arange(1, 1 + n))  # not at the block origin
    df = pd.DataFrame(
        {"country": "SYN", "year": year, "z": 14, "x": X0 + xs.ravel(), "y": Y0 + ys.ravel()}
    )
    df["tile_id"] = [Tile(14, x, y).tile_id for x, y in zip(df["x"], df["y"])]
    df["inhabited"] = rng.random(len(df)) > 0.3
    df["raw_score"] = rng.random(len(df))
    df["score"] = np.where(df["inhabited"], df["raw_score"], 0.0)
    return df


@pytest.fixture
def setup(tiny_countries, tmp_path):
    defs, db = definitions_for(tiny_countries, tmp_path)
    for y, seed in ((2016, 1), (2017, 2)):
        wh.write(db, "siscore_grid", _grid(y, seed=seed), {"country": "SYN", "year": y})
    return defs, db, tmp_path / "data"


def _run(defs, names, year):
    return materialize(
        list(defs.assets),
        selection=select(*names),
        partition_key=country_year_key("SYN", year),
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=True,
    )


def test_raster_and_change_assets_pass_their_checks(setup):
    defs, db, data = setup
    result = _run(defs, ["siscore_raster", "siscore_change"], 2017)
    checks = result.get_asset_check_evaluations()
    assert {(c.asset_key.to_user_string(), c.check_name) for c in checks} == {
        (a, c)
        for a in ("siscore_raster", "siscore_change")
        for c in ("valid_cog", "pixels_match_tiles")
    }
    assert all(c.passed for c in checks)
    meta = result.asset_materializations_for_node("siscore_raster")[0].metadata
    assert "map" in meta and meta["tiles_with_data"].value == int(
        _grid(2017, seed=2)["inhabited"].sum()
    )
    assert (data / "SYN" / "rasters" / "change_2016_2017.tif").is_file()
    with wh.reader(db) as conn:
        files = wh.read_frame(conn, "SELECT kind, format FROM raster_files ORDER BY ALL", [])
    assert len(files) == 4 and set(files["kind"]) == {"siscore", "change_base"}


def test_a_failed_raster_check_blocks_and_publishes_no_file_row(setup, monkeypatch):
    """`stac_catalog` and `web_map` publish the rasters: an invalid COG fails the step (the
    checks are blocking) and leaves no `*_raster_files` row of the partition to publish."""
    from siscore_assets.defs.outputs import maps

    defs, db, _ = setup
    _run(defs, ["siscore_raster", "siscore_change"], 2017)  # rows of a good earlier run
    monkeypatch.setattr(maps.rasters, "validate_cog", lambda tif: (False, ["not a COG"], []))
    for name in ("siscore_raster", "siscore_change"):
        specs = list(defs.get_assets_def(name).check_specs)
        assert specs and all(s.blocking for s in specs), name
        result = materialize(
            list(defs.assets),
            selection=select(name),
            partition_key=country_year_key("SYN", 2017),
            resources=dict(defs.resources),
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        assert not result.success, name
    with wh.reader(db) as conn:
        files = wh.read_frame(conn, "SELECT * FROM raster_files WHERE year = 2017", [])
    assert files.empty


def test_mosaic_without_granules_covers_the_scored_extent(setup):
    defs, db, data = setup
    _run(defs, ["siscore_mosaic"], 2016)  # SYN's granules table is empty here: the tile-folder case
    with wh.reader(db) as conn:
        rows = wh.read_frame(conn, "SELECT * FROM mosaic_files", [])
    assert (
        len(rows) == 1 and rows["granule_id"].iloc[0] == "extent" and rows["tile_px"].iloc[0] == 64
    )
    grid = _grid(2016, seed=1)
    with rasterio.open(rows["path"].iloc[0]) as src:
        np.testing.assert_allclose(
            tuple(src.bounds), block_bounds_3857(14, X0 + 2, Y0 + 1, 9, 9), atol=1e-6
        )
        data_px = src.read(1)
    expect = mosaic.fill_overlay(
        mosaic.scores_block(grid, X0 + 2, Y0 + 1, 9, 9, mask_col="inhabited"), 64
    )
    assert mosaic.compare_overlays(data_px, expect).identical
    assert rows["patches_scored"].iloc[0] == int(grid["inhabited"].sum())
