"""Training material from the synthetic country: the soft-labelled pretraining set and the
simulated annotators' POG lines."""

from __future__ import annotations

import re

import numpy as np

from siscore_assets.core.imagery.synthetic import SyntheticCountry
from siscore_assets_tests.fixtures.synthetic_small import SMALL, spearman

POG_LINE = re.compile(r"^\d+([>=]\d+)*$")


def test_pretrain_set() -> None:
    syn = SyntheticCountry(SMALL)
    images, labels = syn.pretrain_set(96, seed=0)
    assert images.shape == (96, 64, 64, 3) and images.dtype == np.uint8
    assert labels.shape == (96, 3) and np.allclose(labels.sum(axis=1), 1.0)
    assert np.allclose(labels * 4, np.round(labels * 4))
    assert (labels.argmax(axis=1)[:, None] == np.arange(3)).any(axis=0).all()  # all classes seen
    other, _ = syn.pretrain_set(96, seed=1)
    assert not np.array_equal(images, other)


def test_annotators() -> None:
    syn = SyntheticCountry(SMALL)
    rng = np.random.default_rng(0)
    devs = {k: float(v) for k, v in enumerate(np.sort(rng.uniform(0.05, 0.95, 12)))}
    devs[12] = 0.0  # the uninhabited cluster
    pogs = syn.simulate_annotators(devs, seed=5)
    assert len(pogs) == SMALL.n_annotators
    assert sum(name.startswith("careless") for name in pogs) == 1
    assert all(re.fullmatch(r"(eco|sat|loc|careless)\d+", n) for n in pogs)
    left_out = 0
    for name, line in pogs.items():
        assert POG_LINE.match(line), line
        ids = [int(x) for x in re.split("[>=]", line)]
        assert len(ids) == len(set(ids)) and set(ids) <= set(devs)
        assert line.endswith(">12")  # uninhabited alone at the bottom
        left_out += len(ids) < len(devs)
        if not name.startswith("careless"):
            # careful annotators: the order follows the truth closely
            pos = {
                c: i for i, tier in enumerate(line.split(">")) for c in map(int, tier.split("="))
            }
            common = sorted(pos)
            assert spearman([-pos[c] for c in common], [devs[c] for c in common]) > 0.9
    assert 1 <= left_out <= 2
    assert any("=" in line for line in pogs.values())  # near-equal clusters get tied
