"""The unlabelled tile-year sample reads a bounded, seeded set of tiles, every year of each."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.models import splits
from siscore_assets.defs.common import data


def _fake_years(monkeypatch, tiles_by_year: dict[int, list[str]]) -> dict:
    reads: dict[int, list] = {}

    class Stack:  # records which rows are read, like the memory-mapped stack would serve them
        def __init__(self, year: int, n: int) -> None:
            self.year, self.n = year, n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, rows):
            reads.setdefault(self.year, []).append(np.asarray(rows).tolist())
            return np.stack(
                [np.full((2, 2, 3), int(r), np.uint8) for r in np.asarray(rows)]
            ).reshape(-1, 2, 2, 3)

    def year_tiles(settings, warehouse, code, year, **_):
        ids = tiles_by_year[year]
        return pd.DataFrame({"tile_id": ids}), Stack(year, len(ids))

    monkeypatch.setattr(data, "year_tiles", year_tiles)
    return reads


def test_every_tile_in_stack_order_at_or_below_the_cap(monkeypatch):
    tiles = {2016: ["a", "b", "c"], 2017: ["c", "a"]}
    reads = _fake_years(monkeypatch, tiles)
    country = SimpleNamespace(code="XX", years=(2016, 2017))
    out = list(data.tile_year_sample(None, None, country, max_tiles=3, seed=0))
    assert [(y, ids) for y, ids, _ in out] == [(2016, ["a", "b", "c"]), (2017, ["c", "a"])]
    assert out[0][2][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert reads == {2016: [[0, 1, 2]], 2017: [[0, 1]]}


def test_above_the_cap_a_seeded_sample_of_tiles_in_every_year(monkeypatch):
    tiles = {2016: [f"t{i}" for i in range(50)], 2017: [f"t{i}" for i in range(49, -1, -1)]}
    _fake_years(monkeypatch, tiles)
    country = SimpleNamespace(code="XX", years=(2016, 2017))
    first = list(data.tile_year_sample(None, None, country, max_tiles=10, seed=3))
    again = list(data.tile_year_sample(None, None, country, max_tiles=10, seed=3))
    assert [ids for _, ids, _ in first] == [ids for _, ids, _ in again]  # seeded
    ids16, ids17 = first[0][1], first[1][1]
    assert len(ids16) == 10 and sorted(ids16) == sorted(ids17)  # the same places in each year
    assert ids16 == [t for t in tiles[2016] if t in set(ids16)]  # stack order kept
    assert len(first[0][2]) == 10


def test_the_cap_keeps_one_pixel_budget_at_any_tensor_size():
    assert data.unlabelled_tile_cap(48) == data.unlabelled_tile_cap(64) == data.MAX_UNLABELLED_TILES
    assert data.unlabelled_tile_cap(256) == data.MAX_UNLABELLED_TILES // 16
    assert data.unlabelled_tile_cap(100_000) == 1


def test_the_year_holdout_is_seeded_and_kept_out_of_the_sample(monkeypatch):
    tiles = {2016: [f"t{i}" for i in range(30)], 2017: [f"t{i}" for i in range(29, -1, -1)]}
    _fake_years(monkeypatch, tiles)
    country = SimpleNamespace(code="XX", years=(2016, 2017))
    held = splits.holdout_ids(tiles[2016], data.YEAR_HOLDOUT_SHARE, 0)  # see test_splits.py
    assert len(held) == 10
    out = list(data.tile_year_sample(None, None, country, seed=0, holdout=data.YEAR_HOLDOUT_SHARE))
    assert all(len(ids) == 20 and not set(ids) & set(held) for _, ids, _ in out)
    rows = list(data.tile_year_rows(None, None, country, set(held)))
    assert [sorted(ids) for _, ids, _ in rows] == [held, held]


def test_validation_reads_the_year_holdout_the_scorer_was_trained_with(monkeypatch, tmp_path):
    """One tile more (a new year) reshuffles the draw onto places the kept scorer trained on;
    the record written beside the scorer keeps validation's held-out tiles those it left out."""
    tiles = {2016: [f"t{i}" for i in range(30)], 2017: [f"t{i}" for i in range(30)]}
    _fake_years(monkeypatch, tiles)
    monkeypatch.setattr(data, "all_tile_ids", lambda s, w, c: sorted(set(tiles[2016])))
    settings = SimpleNamespace(country_dir=lambda code: tmp_path / code)
    country = SimpleNamespace(code="XX", years=(2016, 2017), models=SimpleNamespace(seed=0))
    trained = data.save_year_holdout(settings, None, country)
    assert trained == data.year_holdout(settings, None, country, seed=0)
    tiles[2016].append("t30")  # a tile usable from now on
    monkeypatch.setattr(data, "all_tile_ids", lambda s, w, c: sorted(set(tiles[2016])))
    assert data.year_holdout(settings, None, country, seed=0) != trained  # the draw moved
    assert data.trained_year_holdout(settings, None, country) == trained


def _extra_country(tmp_path, sizes: list[int]):
    """A country whose `clusters` listed extra images of ``sizes`` (all in cluster 0)."""
    from PIL import Image

    paths = []
    for i, px in enumerate(sizes):
        paths.append(str(tmp_path / "extra" / f"{i}.png"))
        (tmp_path / "extra").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((px, px, 3), 10 * i, np.uint8)).save(paths[-1])
    folder = tmp_path / "XX" / "clusters"
    folder.mkdir(parents=True)
    np.savez(folder / data.EXTRA_MEMBERS, paths=np.asarray(paths), cluster_id=np.zeros(len(sizes)))
    settings = SimpleNamespace(country_dir=lambda code: tmp_path / code)
    country = SimpleNamespace(code="XX", models=SimpleNamespace(stage1_extra_images=("x",), seed=0))
    return settings, country


def test_extra_images_join_the_pools_as_stored_and_another_size_is_refused(tmp_path):
    """The extra images join their clusters' pools beside the tiles as stored (16 px here); an
    image of another size is an error naming it and both sizes, not resized into the pool (which
    took its descriptors' cluster at that size) nor numpy's stack error (found by review)."""
    settings, country = _extra_country(tmp_path, [16, 16])
    pools = {0: np.zeros((3, 16, 16, 3), np.uint8)}
    tiles = {0: np.asarray(["a", "b", "c"], dtype=object)}
    assert data.add_extra_images(settings, country, pools, tiles) == 2
    assert pools[0].shape == (5, 16, 16, 3) and tiles[0].tolist()[3:] == ["extra:0", "extra:1"]
    for sizes in ([16, 8], [8, 8]):
        settings, country = _extra_country(tmp_path / f"s{sizes[0]}", sizes)
        pools = {0: np.zeros((3, 16, 16, 3), np.uint8)}
        with pytest.raises(ValueError, match=r"extra/[01]\.png: .*8x8 px.*tiles are 16x16"):
            data.add_extra_images(settings, country, pools, dict(tiles))
