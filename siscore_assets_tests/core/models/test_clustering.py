"""Clustering: silhouette finds the true K, urban-then-rural label layout, small-group fallbacks."""

from __future__ import annotations

import numpy as np

from siscore_assets.core.models import clustering
from siscore_assets.core.models.clustering import assign_clusters, choose_k, cluster_tiles


def blobs(
    k: int, per: int, dim: int, seed: int, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, dim)) + offset
    truth = np.repeat(np.arange(k), per)
    return centres[truth] + rng.normal(0, 0.5, (k * per, dim)), truth


def _pure(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Each true blob maps to exactly one label and vice versa."""
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=True))
    return len(pairs) == len(set(truth.tolist())) == len(set(labels.tolist()))


def test_choose_k_finds_true_k():
    x, _ = blobs(4, 40, 8, seed=0)
    k, scores = choose_k(x, range(2, 8), seed=0)
    assert k == 4
    assert set(scores) == set(range(2, 8))
    assert scores[4] == max(scores.values())


def test_choose_k_is_seeded_and_subsamples(monkeypatch):
    monkeypatch.setattr(clustering, "SILHOUETTE_SAMPLE", 100)
    x, _ = blobs(3, 200, 4, seed=1)  # 600 points > silhouette sample size
    a = choose_k(x, [2, 3, 4], seed=5)
    b = choose_k(x, [2, 3, 4], seed=5)
    assert a == b
    assert a[0] == 3


def test_choose_k_degenerate_groups():
    assert choose_k(np.zeros((0, 3)), range(2, 5), seed=0) == (0, {})
    assert choose_k(np.ones((1, 3)), range(2, 5), seed=0) == (1, {})
    assert choose_k(np.random.default_rng(0).normal(size=(2, 3)), range(2, 5), seed=0) == (1, {})


def test_cluster_tiles_urban_then_rural():
    xu, tu = blobs(3, 30, 6, seed=2, offset=40.0)
    xr, tr = blobs(2, 40, 6, seed=3, offset=-40.0)
    x = np.concatenate([xr[:20], xu, xr[20:]])  # interleave groups
    urban = np.zeros(len(x), dtype=bool)
    urban[20 : 20 + len(xu)] = True
    truth = np.concatenate([tr[:20] + 10, tu, tr[20:] + 10])
    res = cluster_tiles(x, urban, k_range_urban=range(2, 6), k_range_rural=range(2, 6), seed=0)
    assert (res.k_urban, res.k_rural) == (3, 2)
    assert res.n_clusters == 5
    assert set(res.labels[urban]) == {0, 1, 2}
    assert set(res.labels[~urban]) == {3, 4}
    assert _pure(res.labels, truth)
    assert res.centroids.shape[0] == 5
    assert set(res.silhouettes) == {"urban", "rural"}
    assert set(res.silhouettes["urban"]) == {2, 3, 4, 5}
    np.testing.assert_array_equal(assign_clusters(res, x, urban), res.labels)
    again = cluster_tiles(x, urban, k_range_urban=range(2, 6), k_range_rural=range(2, 6), seed=0)
    np.testing.assert_array_equal(again.labels, res.labels)


def test_small_groups_fall_back():
    xu, _ = blobs(2, 10, 4, seed=4)
    x = np.concatenate([xu, np.ones((1, 4))])
    urban = np.array([True] * len(xu) + [False])
    res = cluster_tiles(x, urban, k_range_urban=range(2, 5), k_range_rural=range(2, 5), seed=0)
    assert res.k_urban == 2 and res.k_rural == 1
    assert res.labels[-1] == 2
    assert res.silhouettes["rural"] == {}

    res0 = cluster_tiles(
        xu, np.ones(len(xu), bool), k_range_urban=range(2, 5), k_range_rural=range(2, 5), seed=0
    )
    assert res0.k_rural == 0 and set(res0.labels) == {0, 1}

    # K range larger than the group: capped to what silhouette can judge (<= N-1)
    x3 = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0]])
    res3 = cluster_tiles(
        x3, np.zeros(3, bool), k_range_urban=[2], k_range_rural=range(2, 9), seed=0
    )
    assert res3.k_urban == 0 and res3.k_rural == 2
    assert res3.labels[0] == res3.labels[1] != res3.labels[2]

    # one tile total: no crash
    res1 = cluster_tiles(
        np.ones((1, 5)),
        np.array([True]),
        k_range_urban=range(2, 5),
        k_range_rural=range(2, 5),
        seed=0,
    )
    assert (res1.k_urban, res1.k_rural) == (1, 0) and res1.labels.tolist() == [0]


def test_cluster_country_fits_a_sample_and_assigns_the_rest_in_batches():
    """The clusters asset's core call: k-means on a seeded sample of the inhabited tile-years,
    the rest placed at the nearest centroid batch by batch (any batch size, the same labels),
    uninhabited tile-years in the last cluster."""
    import pandas as pd
    import torch

    from siscore_assets.core.model_settings import ModelSettings
    from siscore_assets.core.models import stage1
    from siscore_assets.core.models.habitation import HabitationConfig, HabitationModel, embed

    rng = np.random.default_rng(0)
    n = 60
    images = np.concatenate(
        [rng.integers(lo, lo + 40, (n // 3, 16, 16, 3)) for lo in (0, 100, 200)]
    ).astype(np.uint8)
    tiles = pd.DataFrame(
        {
            "country": "XX",
            "year": 2020,
            "tile_id": [f"t{i}" for i in range(n)],
            "z": 14,
            "x": np.arange(n),
            "y": 0,
            "inhabited": [None if i % 7 == 0 else i % 5 != 0 for i in range(n)],
            "urban": [i % 2 == 0 for i in range(n)],
        }
    )
    torch.manual_seed(0)
    model = HabitationModel(HabitationConfig(input_px=16, widths=(8, 16, 32, 64))).eval()
    m = ModelSettings(cluster_sample=20, k_range_urban=(2, 3), k_range_rural=(2, 3), seed=1)
    res = stage1.cluster_country(tiles, images, model, m, "kmeans", country="XX")
    inhabited = tiles["inhabited"].fillna(False).to_numpy(bool)
    urban = tiles["urban"].to_numpy(bool)
    fit = clustering.fit_sample(np.flatnonzero(inhabited), 20, 1)
    ref = cluster_tiles(
        embed(model, images[fit]),
        urban[fit],
        k_range_urban=range(2, 4),
        k_range_rural=range(2, 4),
        seed=1,
    )
    rest = np.setdiff1d(np.flatnonzero(inhabited), fit)
    assert np.array_equal(res.fit_rows, fit) and res.k == ref.n_clusters
    assert np.array_equal(res.labels[fit], ref.labels)
    assert np.array_equal(
        res.labels[rest], assign_clusters(ref, embed(model, images[rest]), urban[rest])
    )
    assert (res.labels[~inhabited] == res.k).all()
    assert res.members["cluster_id"].tolist() == res.labels.tolist()
    assert res.summary["n_tiles"].sum() == n and set(res.silhouettes["group"]) <= {
        "urban",
        "rural",
    }
    rows = np.flatnonzero(inhabited)
    assert np.array_equal(
        stage1.assign_in_batches(ref, model, images, rows, urban, batch=3),
        assign_clusters(ref, embed(model, images[rows]), urban[rows]),
    )
