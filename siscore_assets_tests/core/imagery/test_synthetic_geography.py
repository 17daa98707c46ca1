"""The synthetic country's geography: how much land is settled, and where growth happens."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.imagery.synthetic import (
    SETTLED,
    URBAN_THRESHOLD,
    SyntheticCountry,
    SyntheticSpec,
)
from siscore_assets_tests.fixtures.synthetic_small import SMALL


@pytest.mark.parametrize("spec", [SMALL, SyntheticSpec()], ids=["small", "default"])
def test_inhabited_share_and_spread(spec: SyntheticSpec) -> None:
    c = SyntheticCountry(spec)
    for y in spec.years:
        dev = c.development(y)
        inhabited = dev > 0
        assert 0.30 <= inhabited.mean() <= 0.45
        assert np.array_equal(inhabited, c.land_cover() == SETTLED)
        v = dev[inhabited]
        assert np.median(v) < 0.3  # mostly villages ...
        assert (v >= URBAN_THRESHOLD).sum() >= 2  # ... and some towns
    lc = c.land_cover()
    for cls in range(4):
        assert (lc == cls).mean() > 0.02


def test_edz_grows_clearly_cities_a_little(syn: SyntheticCountry) -> None:
    cov = syn.tile_covariates()
    first, last = syn.development(SMALL.years[0]).ravel(), syn.development(SMALL.years[-1]).ravel()
    edz = cov.in_edz.to_numpy() & (first > 0)
    assert edz.any()
    assert (last[edz] - first[edz]).mean() > 0.1
    other = (first > 0) & ~edz
    assert np.all(last[other] >= first[other] - 1e-9)
    assert (last[other] - first[other]).mean() < (last[edz] - first[edz]).mean()
