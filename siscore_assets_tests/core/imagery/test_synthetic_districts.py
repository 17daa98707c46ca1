"""The many-district synthetic country: district sizes over orders of magnitude, every district
with tiles, and an indicator with an agglomeration effect; SYN's even layout stays the default."""

from __future__ import annotations

import numpy as np
import pytest

from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.core.imagery.synthetic.geography import district_indicator


def test_clustered_layout_sizes_span_orders_of_magnitude():
    spec = SyntheticSpec(seed=2, nx=48, ny=48, n_districts=120, n_provinces=4,
                         district_layout="clustered")  # fmt: skip
    country = SyntheticCountry(spec)
    sizes = country.tile_covariates().groupby("district_id").size()
    assert len(sizes) == 120  # every district holds at least one tile centre
    assert sizes.max() / sizes.min() >= 30
    d = country.districts()
    assert len(d) == 120 and d["area_km2"].max() / d["area_km2"].min() >= 30
    again = SyntheticCountry(spec).districts()
    assert d.drop(columns="geometry").equals(again.drop(columns="geometry"))


def test_layout_is_checked_and_even_by_default():
    assert SyntheticSpec().district_layout == "even"
    with pytest.raises(ValueError, match="district_layout must be even or clustered"):
        SyntheticSpec(district_layout="random")


def test_indicator_has_an_agglomeration_effect():
    pop = np.array([1000.0, 1000.0, 1000.0])
    area = np.array([100.0, 10.0, 1.0])  # densities 10, 100, 1000 per km2
    y = district_indicator(pop, area, seed=0, beta=0.3)
    per_head = y / pop
    assert per_head[2] > per_head[1] > per_head[0]
    # the density effect (x 10^0.3 per decade ~ 2) dominates the 10 % noise
    assert per_head[2] / per_head[0] == pytest.approx(100**0.3, rel=0.4)
    np.testing.assert_array_equal(y, district_indicator(pop, area, seed=0, beta=0.3))
