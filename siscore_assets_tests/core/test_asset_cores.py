"""The core calls the thin assets make: the `patches` index summary, change-map reference years,
the mosaic's coarsening and blocks, the headline validation rho, the ensemble's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siscore_assets.core import ranking
from siscore_assets.core.analysis import reports
from siscore_assets.core.imagery import patch_index
from siscore_assets.core.maps import change_maps, mosaic_files
from siscore_assets.core.ranking import ensemble_tables


class FakeSpool:
    def __init__(self):
        self.frames: list[pd.DataFrame] = []

    def append(self, frame: pd.DataFrame) -> int:
        self.frames.append(frame.copy())
        return len(frame)

    def query(self, sql: str) -> pd.DataFrame:
        import duckdb

        rows = pd.concat(self.frames, ignore_index=True)  # noqa: F841 - read by duckdb
        return duckdb.sql(sql.replace("{spool}", "rows")).df()


def test_spool_index_keys_every_batch_and_counts_statuses_and_duplicates():
    batches = [
        pd.DataFrame({"tile_id": ["a", "b"], "x": [0, 1], "status": ["ok", "cloudy"]}),
        pd.DataFrame({"tile_id": ["b", "c"], "x": [1, -1], "status": ["ok", "corrupt"]}),
    ]
    warnings: list[str] = []
    spool = FakeSpool()
    out = patch_index.spool_index(spool, iter(batches), "XX", 2020, "/s", warnings.append)
    assert list(spool.frames[0].columns) == [
        "country",
        "year",
        "tile_id",
        "x",
        "status",
        "stack_path",
    ]
    assert out.counts == {"ok": 2, "cloudy": 1, "corrupt": 1} and out.duplicates == 1
    assert out.status_metadata() == {
        "usable_tiles": 2,
        "blank_tiles": 0,
        "cloudy_tiles": 1,
        "corrupt_granules_or_tiles": 1,
    }
    assert warnings == ["XX 2020: tiles not scored: cloudy 1, corrupt 1 (rows in `patches`)"]


def test_sample_tiles_is_seeded_and_handles_an_empty_store():
    stack = np.arange(50 * 2 * 2 * 3, dtype=np.uint8).reshape(50, 2, 2, 3)
    a = patch_index.sample_tiles(stack)
    assert len(a) == 32 and np.array_equal(a, patch_index.sample_tiles(stack))
    assert patch_index.sample_tiles(stack[:0]).shape == (0, 1, 1, 3)


def test_change_reference_years():
    assert change_maps.reference_years((2018, 2020, 2022), 2018) == {"prev": None, "base": 2018}
    assert change_maps.reference_years((2018, 2020, 2022), 2022) == {"prev": 2020, "base": 2018}


def test_first_year_has_no_change_pairs_and_an_empty_files_table(tmp_path):
    grid = pd.DataFrame(
        {"country": "XX", "year": 2018, "tile_id": ["t"], "z": 14, "x": [1], "y": [2], "score": 0.5}
    )
    out = change_maps.year_change(grid, (2018, 2020), 2018, lambda ref: grid[:0], tmp_path)
    assert out.pairs == [] and out.notes == {} and len(out.table) == 1
    assert out.files("XX", 2018).empty


def test_mosaic_coarsens_huge_extents_and_falls_back_to_the_scored_extent():
    assert mosaic_files.fitting_px(10, 10, 256) == 256
    big = mosaic_files.fitting_px(1000, 1000, 256)
    assert 1000 * 1000 * big * big <= mosaic_files.MOSAIC_MAX_PIXELS < 1000 * 1000 * 4 * big**2
    grid = pd.DataFrame({"x": [3, 5], "y": [7, 8]})
    blocks = mosaic_files.grid_granules(grid, pd.DataFrame(), single_tiles=False, tile_px=64)
    assert blocks.to_dict("records") == [
        {
            "granule_id": "extent",
            "tile_x0": 3,
            "tile_y0": 7,
            "tiles_x": 3,
            "tiles_y": 2,
            "tile_px": 64,
        }
    ]
    granules = pd.DataFrame({"granule_id": ["g"], "width_px": [512], "tiles_x": [2]})
    assert mosaic_files.grid_granules(grid, granules, False, 64)["tile_px"].tolist() == [256]
    assert mosaic_files.grid_granules(grid, granules, True, 64)["granule_id"].tolist() == ["extent"]


def test_building_rho_picks_the_headline_pair():
    table = pd.DataFrame(
        {
            "model": ["siscore", "siscore", "nl"],
            "proxy": ["building_floor_area_m2"] * 3,
            "subset": ["inhabited", "all", "all"],
            "spearman_rho": [0.1, 0.7, 0.3],
        }
    )
    assert reports.building_rho(table) == 0.7
    assert reports.building_rho(table[table["model"] == "nl"]) is None


def test_ensemble_tables_give_one_row_per_cluster_and_the_files_text():
    pogs = [ranking.parse_line(line) for line in ("2 > 1 > 0", "2 > 1 > 0", "1 > 2 > 0")]
    result = ranking.ensemble(pogs, [0, 1, 2], names=["a", "b", "c"])
    out = ensemble_tables.ensemble_tables(result, [0, 1, 2], 3, "XX")
    assert out.valid and out.line == result.pog.to_line()
    assert out.clusters["cluster_id"].tolist() == [0, 1, 2]
    assert out.clusters["tier"].notna().all() and not out.clusters["pruned"].any()
    assert out.weights["annotator"].tolist() == ["a", "b", "c"]
    assert "3" in out.edges
