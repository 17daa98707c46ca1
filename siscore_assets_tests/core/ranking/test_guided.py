"""Data-guided POGs: cluster means of a proxy, tiers with a tie tolerance, baseline tile scores,
raster sampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_bounds

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.ranking import parse_line
from siscore_assets.core.ranking.guided import (
    baseline_tile_scores,
    cluster_means,
    guided_pog,
    guided_scores,
    raster_tile_means,
)


def test_cluster_means_skip_missing_values():
    got = cluster_means([0, 0, 1, 1, 3, 2], [1.0, 3.0, np.nan, 5.0, np.nan, 0.0])
    assert got == {0: (2.0, 2), 1: (5.0, 1), 2: (0.0, 1)}  # cluster 3 has no value
    assert cluster_means([0], [np.nan]) == {}
    with pytest.raises(ValueError, match="same length"):
        cluster_means([0, 1], [1.0])


def test_guided_pog_orders_and_ties_within_tolerance():
    means = {0: 10.0, 1: 9.9, 2: 5.0, 3: 0.0, 4: 0.1, 5: float("nan")}
    assert guided_pog(means, tolerance=0.0).to_line() == "0>1>2>4>3"
    assert guided_pog(means, tolerance=0.02).to_line() == "0=1>2>3=4"  # 2% of the range = 0.2
    assert guided_pog(means, tolerance=0.6).to_line() == "0=1=2>3=4"
    assert guided_pog(means, tolerance=1.0).to_line() == "0=1=2=3=4"
    low = guided_pog(means, tolerance=0.0, higher_is_more_developed=False)
    assert low.to_line() == "3>4>2>1>0"
    assert guided_pog({7: 1.0, 8: 1.0}, tolerance=0.0).to_line() == "7=8"
    with pytest.raises(ValueError, match="no cluster"):
        guided_pog({0: float("nan")})
    with pytest.raises(ValueError, match="tolerance"):
        guided_pog(means, tolerance=2.0)


def test_guided_pog_is_a_valid_annotator_pog():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 22, size=5000)
    light = ids * 1.5 + rng.gamma(1.0, 2.0, size=5000)  # brighter with the cluster id
    pog = guided_pog({c: m for c, (m, _) in cluster_means(ids, light).items()}, tolerance=0.02)
    assert pog.nodes == frozenset(range(22)) and pog.is_total()
    assert parse_line(pog.to_line(), known_ids=range(22)) == pog
    assert pog.is_less(0, 21) and pog.is_less(5, 15)
    scores = guided_scores(pog, list(range(23)))
    assert scores[21] == 1.0 and scores[0] == 0.0 and np.isnan(scores[22])


def test_baseline_tile_scores_are_the_guided_pog_cluster_scores():
    # clusters 0..3 inhabited (3 has no proxy value), 9 uninhabited; two years of tiles
    members = pd.DataFrame(
        {
            "year": [2016, 2016, 2016, 2016, 2017, 2017, 2017],
            "tile_id": ["a", "b", "c", "d", "a", "c", "e"],
            "cluster_id": [0, 1, 2, 9, 0, 3, 2],
        }
    )
    light = [10.0, 0.5, 4.0, np.nan, 20.0, np.nan, 4.0]
    inhabited = members["cluster_id"] != 9
    means = cluster_means(members.loc[inhabited, "cluster_id"], np.asarray(light)[inhabited])
    assert means == {0: (15.0, 2), 1: (0.5, 1), 2: (4.0, 2)}
    pog = guided_pog({c: m for c, (m, _) in means.items()}, tolerance=0.0)
    assert pog.to_line() == "0>2>1"
    scores = guided_scores(pog, [0, 1, 2, 3])
    table = pd.DataFrame(
        {
            "cluster_id": [0, 1, 2, 3],
            "tier": [3, 1, 2, np.nan],
            "guided_score": [scores[c] for c in range(4)],
        }
    )
    out = baseline_tile_scores(members, table, bottom=9, n_tiers=3)
    assert list(out["score"].iloc[[0, 1, 2, 3, 4, 6]]) == [1.0, 0.0, 0.5, 0.0, 1.0, 0.5]
    assert np.isnan(out["score"].iloc[5])  # cluster 3: left out of the POG
    assert out["tier"].tolist()[:5] == [3, 1, 2, 0, 3] and out["tier"].isna().tolist()[5]
    assert (out["n_tiers"] == 4).all()  # the uninhabited bottom tier counts
    with pytest.raises(ValueError, match="one row per cluster"):
        baseline_tile_scores(members, pd.concat([table, table]), bottom=9, n_tiers=3)


def test_raster_tile_means(tmp_path):
    tiles = [Tile(14, 13990 + i, 6259) for i in range(3)]
    left = tiles[0].bounds_3857()[0]
    bottom, top = tiles[0].bounds_3857()[1], tiles[0].bounds_3857()[3]
    right = tiles[1].bounds_3857()[2]  # the raster covers tiles 0 and 1, not 2
    data = np.zeros((4, 8), np.float32)
    data[:, :4] = 2.0
    data[:, 4:] = 6.0
    data[0, 4] = -9999  # nodata inside tile 1
    path = tmp_path / "nl.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=4,
        count=1,
        dtype="float32",
        crs="EPSG:3857",
        transform=from_bounds(left, bottom, right, top, 8, 4),
        nodata=-9999,
    ) as dst:
        dst.write(data, 1)
    got = raster_tile_means(path, tiles)
    assert got[0] == pytest.approx(2.0) and got[1] == pytest.approx(6.0) and np.isnan(got[2])
    # the same raster in lon/lat: tile means survive the reprojection of the bounds
    w, s, _, n = tiles[0].bounds_lonlat()
    e = tiles[1].bounds_lonlat()[2]
    path4326 = tmp_path / "nl4326.tif"
    with rasterio.open(
        path4326,
        "w",
        driver="GTiff",
        width=80,
        height=40,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_bounds(w, s, e, n, 80, 40),
        nodata=-9999,
    ) as dst:
        dst.write(np.repeat(np.repeat(np.where(data == -9999, 6.0, data), 10, 0), 10, 1), 1)
    got = raster_tile_means(path4326, tiles)
    assert got[0] == pytest.approx(2.0, abs=0.2) and got[1] == pytest.approx(6.0, abs=0.2)
