"""The district-join benchmark runs on the real NK layer and both functions agree."""

from __future__ import annotations

from benchmarks import district_join


def test_both_joins_assign_the_same_tiles():
    a = district_join.one("tile_districts", 2000, district_join.LAYER)
    b = district_join.one("aggregate_by_district", 2000, district_join.LAYER)
    assert a["districts"] == b["districts"] == 178
    assert 0 < a["assigned"] == b["assigned"] < 2000
