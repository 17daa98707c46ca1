"""The induced annotators of ``make prks`` (a measurement stand-in, not people): a new cluster's
rank is the mean tier, in one person's POG, of the paper clusters its member images come from."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from benchmarks import induced_annotators as ia
from siscore_assets.core.models.clustering import ClusterResult


def test_hand_computed_case():
    tiers = ia.person_tiers(ia.parse_line("3=4>1>0"))  # 3, 4 top (2), 1 (1), 0 bottom (0)
    assert tiers == {3: 2, 4: 2, 1: 1, 0: 0}
    new = np.array([0, 0, 1, 1, 1, 2, 5, 5])
    paper = np.array([3, 0, 1, 1, 4, 9, 3, 3])  # 9: a cluster this person left out
    ranks = ia.induced_ranks(new, paper, tiers, bottom=5)
    assert ranks == {0: 1.0, 1: pytest.approx(4 / 3)}  # cluster 2: nothing ranked; 5: bottom
    assert ia.pog_line(ranks) == "1>0"
    assert ia.pog_line({0: 1.0, 1: 1.0, 2: 0.5}) == "0=1>2"
    assert ia.paper_cluster_of("/x/nk_sample/clusters/12/7.png") == 12
    assert ia.paper_cluster_of("/x/nk_sample/pretrain/images/7.png") is None


def test_writes_one_induced_pog_per_person_where_the_sensors_look(tmp_path):
    sample = tmp_path / "sample"
    (sample / "annotations").mkdir(parents=True)
    (sample / "annotations" / "pogs.txt").write_text("1>0\n0=1\n")
    (sample / "annotations" / "annotators.txt").write_text("sat1\nloc1\n")
    data = tmp_path / "data"
    (data / "XX" / "clusters").mkdir(parents=True)
    (data / "XX" / "models").mkdir(parents=True)
    paths = [f"/s/clusters/{p}/{i}.png" for i, p in enumerate([0, 0, 1, 1])] + ["/s/pretrain/a.png"]
    np.savez(
        data / "XX" / "clusters" / "extra_members.npz",
        paths=np.array(paths),
        cluster_id=np.array([1, 1, 0, 2, 0]),
    )
    res = ClusterResult(np.zeros(1, int), 1, 1, {}, np.zeros((2, 1)))
    (data / "XX" / "models" / "clusters.pkl").write_bytes(pickle.dumps(res))
    written = ia.write_induced(data, "XX", sample)
    assert [p.name for p in written] == ["induced_sat1.pog", "induced_loc1.pog"]
    assert written[0].read_text() == "0>1\n"  # new 0 holds a paper-1 image, new 1 two paper-0
    assert written[1].read_text() == "0=1\n"
    (data / "XX" / "clusters" / "extra_members.npz").unlink()
    with pytest.raises(SystemExit, match="materialise XX's 'clusters' first"):
        ia.write_induced(data, "XX", sample)
