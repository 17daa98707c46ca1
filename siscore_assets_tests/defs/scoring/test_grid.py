"""`siscore_grid`'s work beside its body: the radiometric fit from stored band means equals the
fit on every year's tiles, the rows joined on tile keys equal the year-wide frames they replace, and
the ``cpu`` recipe's stored parts give the fused scores, reused across retraining and refused or
recomputed when stale."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import radiometry, tile_blocks
from siscore_assets.core.imagery.patches import STATUS_OK
from siscore_assets.core.models import batch_inference, scorer_parts, siscore
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models.common import checkpoint_digest
from siscore_assets.core.storage import tile_store
from siscore_assets.defs.common import tile_rows
from siscore_assets.defs.common.resources import SiscoreSettings, Warehouse
from siscore_assets.defs.scoring import checks, grid
from siscore_assets_tests.core.models.test_fused_scoring import images as toy_tiles
from siscore_assets_tests.core.models.test_fused_scoring import tiny_ensemble

ONE = WorkerConfig(workers=1, retries=0)
YEARS = (2016, 2017, 2018)
CODE = "TST"


def country(radiometry_mode: str = "relative", years=YEARS):
    return SimpleNamespace(
        code=CODE, years=list(years), models=SimpleNamespace(radiometry=radiometry_mode)
    )


@pytest.fixture()
def world(tmp_path):
    """Three years of 12 px tiles (each year a different subset and order of 40 places, one year
    hazy), their `patches` rows (one not usable) and `habitation` rows."""
    rng = np.random.default_rng(0)
    base = rng.integers(10, 230, (40, 12, 12, 3)).astype(np.float64)
    wh = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    imgs = {}
    for k, year in enumerate(YEARS):
        places = rng.permutation(40)[: 36 - 4 * k]
        gain = 0.7 if year == 2017 else 1.0
        img = np.clip(base[places] * gain + rng.normal(0, 4, base[places].shape), 0, 255)
        imgs[year] = img.astype(np.uint8)
        store = tile_blocks.store_stack(
            imgs[year], tmp_path / "tiles" / str(year), rows_per_block=8
        )
        n = len(places)
        rows = pd.DataFrame(
            {
                "country": CODE,
                "year": year,
                "tile_id": [f"14/{p}/7" for p in places] + ["14/99/9"],
                "z": 14,
                "x": [int(p) for p in places] + [99],
                "y": 7,
                "image_row": list(range(n)) + [-1],
                "status": [STATUS_OK] * n + ["cloudy"],
                "stack_path": str(store.folder),
            }
        )
        wh.write(
            "patches",
            rows.sample(frac=1.0, random_state=year).reset_index(drop=True),
            {"country": CODE, "year": year},
        )  # any file order
        hab = rows.iloc[:n][["country", "year", "tile_id", "z", "x", "y"]].assign(
            inhabited=[bool(p % 3) if p % 7 else None for p in places]
        )
        wh.write(
            "habitation", hab.iloc[2:].reset_index(drop=True), {"country": CODE, "year": year}
        )  # 2 tiles missing
    return SimpleNamespace(wh=wh, imgs=imgs, settings=SiscoreSettings(data_root=str(tmp_path)))


def landed_transform(world, year: int) -> radiometry.BandTransform | None:
    """What `year_transform` returned before band means were stored: every year's tiles read."""
    means = {}
    for y in YEARS:
        rows = world.wh.read("patches", {"country": CODE, "year": y}, order_by="image_row")
        ids = rows.loc[rows["status"] == STATUS_OK, "tile_id"].to_numpy()
        means[y] = pd.DataFrame(radiometry.band_means(world.imgs[y]), index=ids)
    return radiometry.canonical_transforms(means).get(year)


def test_the_fit_from_stored_means_is_the_fit_on_every_years_tiles(world, monkeypatch):
    logged = []
    for year in YEARS:
        got = grid.year_transform(world.settings, world.wh, country(), year, ONE, logged.append)
        assert got == landed_transform(world, year)
        assert not got.is_identity
    from siscore_assets.core.imagery import band_means

    monkeypatch.setattr(band_means, "band_means", lambda x: pytest.fail("tiles read again"))
    again = grid.year_transform(world.settings, world.wh, country(), 2017, ONE, logged.append)
    assert again == landed_transform(world, 2017)
    assert grid.year_transform(world.settings, world.wh, country("none"), 2017, ONE, print) is None


def landed_rows(world, year: int, raw: np.ndarray, zero: bool) -> pd.DataFrame:
    """The year-wide frames `siscore_grid` built before (index, habitation join, the map)."""
    rows = world.wh.read("patches", {"country": CODE, "year": year}, order_by="image_row")
    index = rows[rows["status"] == STATUS_OK].reset_index(drop=True)
    hab = world.wh.read("habitation", {"country": CODE, "year": year})
    ever: set = set()
    for y in YEARS:
        other = world.wh.read("habitation", {"country": CODE, "year": y})
        ever |= set(other.loc[other["inhabited"].fillna(False).astype(bool), "tile_id"])
    anyyear = hab.assign(
        inhabited=hab["inhabited"].fillna(False).astype(bool) | hab["tile_id"].isin(ever)
    )
    frame = siscore.siscore_table(index, raw, anyyear, zero_uninhabited=zero)
    frame["inhabited"] = frame["tile_id"].map(hab.set_index("tile_id")["inhabited"])
    return frame


@pytest.mark.parametrize("zero", [True, False])
def test_grid_rows_joined_on_tile_keys_are_the_landed_frames(world, zero, monkeypatch):
    monkeypatch.setattr(tile_rows, "TILE_BATCH_ROWS", 5)  # many spooled batches: the same rows
    year = 2017
    raw = np.random.default_rng(1).uniform(0, 1, 32)
    with world.wh.spool("siscore_grid", {"country": CODE, "year": year}) as spool:
        summary = grid.spool_grid(world.wh, spool, country(), year, raw, zero, scorer="0123abcd")
        check = grid.unit_interval_result(summary)
        spool.commit()
    got = world.wh.read("siscore_grid", {"country": CODE, "year": year})
    assert set(got.pop("scorer")) == {"0123abcd"}  # every row names the model that made it
    want = landed_rows(world, year, raw, zero)
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(
        got.drop(columns="inhabited"), want.drop(columns="inhabited"), check_dtype=False
    )

    def verdicts(col):
        return [None if pd.isna(v) else bool(v) for v in col]

    assert verdicts(got["inhabited"]) == verdicts(want["inhabited"])
    assert got["inhabited"].isna().sum() > 2 and (got["score"] == 0).any() == zero
    assert check.passed
    assert check.metadata == checks.unit_interval_check(want).metadata
    assert summary["mean_score"] == pytest.approx(want["score"].mean())


def test_broken_scores_fail_the_check_and_nothing_is_committed(world):
    keys = {"country": CODE, "year": 2016}
    raw = np.linspace(0, 1, 36)
    raw[3], raw[4] = np.nan, 1.5
    with world.wh.spool("siscore_grid", keys) as spool:
        check = grid.unit_interval_result(
            grid.spool_grid(world.wh, spool, country(), 2016, raw, False)
        )
    assert not check.passed
    assert check.metadata["not_finite"].value == 1
    assert check.metadata["outside_unit_interval"].value == 1
    assert world.wh.read("siscore_grid", keys).empty
    with (
        world.wh.spool("siscore_grid", keys) as spool,
        pytest.raises(ValueError, match="35 scores for 36 usable tiles"),
    ):
        grid.spool_grid(world.wh, spool, country(), 2016, raw[:35], False)
    with pytest.raises(FileNotFoundError, match="no habitation for TST|2015"):
        tile_rows.require_habitation(world.wh, CODE, 2015)


@pytest.fixture()
def scored(tmp_path):
    """A two-seed colour-statistics scorer (8 px CNN input from 32 px tiles) and its store."""
    path = scorer_lib.save_scorer(tiny_ensemble((0, 1)), tmp_path / "scorer.pt")
    store = tile_blocks.store_stack(toy_tiles(20), tmp_path / "tiles", rows_per_block=8)
    return path, store


def fused(path, store, fix):
    return batch_inference.map_store(
        batch_inference.score_block, path, store.folder, store, None, ONE,
        empty=np.zeros(0), extra=(fix,),
    )  # fmt: skip


def test_the_cpu_recipe_scores_from_stored_parts(scored, monkeypatch):
    path, store = scored
    fix = radiometry.BandTransform((1.1, 0.9, 1.0), (2.0, -1.0, 0.0), 9)
    raw, how, digest = grid.year_scores(path, str(store.folder), store, "cpu", fix, ONE, print)
    assert digest == checkpoint_digest(path)
    assert how.startswith("stored parts")
    assert np.abs(raw - fused(path, store, fix)).max() <= 1e-6
    spec = scorer_parts.PartsSpec.of(scorer_lib.load_scorer(path).config, fix)
    first = scorer_parts.parts_folder(store.folder, spec)
    assert len(list(first.glob("*.json"))) == 3  # one record per tile block
    # retrained (other weights, the same preprocessing): the parts are read, not recomputed
    scorer_lib.save_scorer(tiny_ensemble((5, 6)), path)
    monkeypatch.setattr(
        scorer_parts, "compute_parts", lambda *a: pytest.fail("parts recomputed on retraining")
    )
    raw, _, _ = grid.year_scores(path, str(store.folder), store, "cpu", fix, ONE, print)
    assert np.abs(raw - fused(path, store, fix)).max() <= 1e-6
    monkeypatch.undo()
    # another transform: other parts computed, the stale ones removed (never scored)
    raw, _, _ = grid.year_scores(path, str(store.folder), store, "cpu", None, ONE, print)
    assert np.abs(raw - fused(path, store, None)).max() <= 1e-6
    assert not first.exists()
    assert len(list((store.folder / scorer_parts.PARTS_DIR).iterdir())) == 1


def test_parts_of_other_tiles_are_recomputed_not_scored(scored):
    path, store = scored
    grid.year_scores(path, str(store.folder), store, "cpu", None, ONE, print)
    # the store re-cut in place: its first block holds other tiles, under another digest
    other = toy_tiles(20)[::-1].copy()
    blocks = [
        tile_store.write_block(
            store.folder, name, other[lo:hi], pd.DataFrame({"r": range(lo, hi)}), f"new{lo}"
        )
        for name, lo, hi in store.block_ranges()
    ]
    store = tile_store.commit(store.folder, blocks, 32)
    raw, _, _ = grid.year_scores(path, str(store.folder), store, "cpu", None, ONE, print)
    np.testing.assert_allclose(raw, fused(path, store, None), atol=1e-6)
    with pytest.raises(scorer_parts.PartsError, match="computed from other tiles"):
        record = next((store.folder / scorer_parts.PARTS_DIR).glob("*/*.json"))
        text = record.read_text().replace('"tile_digest": "new', '"tile_digest": "old')
        record.write_text(text)
        scorer_parts.score_parts_block(str(path), str(store.folder), 0, 20)


def test_recipes_without_statistics_score_the_native_tiles(tmp_path):
    path = scorer_lib.save_scorer(
        tiny_ensemble((0,), colour_stats=False, texture_px=0), tmp_path / "scorer.pt"
    )
    store = tile_blocks.store_stack(toy_tiles(6), tmp_path / "tiles", rows_per_block=8)
    raw, how, _ = grid.year_scores(path, str(store.folder), store, "cpu", None, ONE, print)
    assert how.startswith("native tiles")
    np.testing.assert_array_equal(raw, fused(path, store, None))
    assert not (store.folder / scorer_parts.PARTS_DIR).exists()


def test_a_scorer_retrained_while_a_year_is_scored_fails_the_year(scored, monkeypatch):
    """Tasks load the scorer file they find: a retrain mid-year would leave rows of two
    scorers in one partition."""
    path, store = scored
    real = batch_inference.map_store

    def retrained_midway(*args, **kwargs):
        out = real(*args, **kwargs)
        scorer_lib.save_scorer(tiny_ensemble((5, 6)), path)  # the sensor retrains it now
        return out

    monkeypatch.setattr(batch_inference, "map_store", retrained_midway)
    with pytest.raises(RuntimeError, match="changed while .* was scored"):
        grid.year_scores(path, str(store.folder), store, "cpu", None, ONE, print)


def test_a_tile_twice_in_habitation_is_refused_and_nothing_is_written(world):
    keys = {"country": CODE, "year": 2016}
    hab = world.wh.read("habitation", keys)
    world.wh.write("habitation", pd.concat([hab, hab.iloc[:1]], ignore_index=True), keys)
    with (
        world.wh.spool("siscore_grid", keys) as spool,
        pytest.raises(ValueError, match=r"TST\|2016: `habitation` holds a tile twice"),
    ):
        grid.spool_grid(world.wh, spool, country(), 2016, np.linspace(0, 1, 36), False)
    assert world.wh.read("siscore_grid", keys).empty
