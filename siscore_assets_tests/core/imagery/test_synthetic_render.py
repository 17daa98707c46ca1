"""The synthetic tile renderer: development is visible, and growth only adds buildings."""

from __future__ import annotations

import numpy as np

from siscore_assets.core.imagery.synthetic import SyntheticCountry, built_fraction
from siscore_assets_tests.fixtures.synthetic_small import SMALL, spearman


def test_development_is_visible(last_year) -> None:
    """A cheap proxy for what the CNN scorer must learn: brightness and edges follow floor area."""
    tiles, t = last_year
    inh = t.inhabited.to_numpy()
    img = tiles[inh].astype(np.float32)
    brightness = img.mean(axis=(1, 2, 3))
    grey = img.mean(axis=3)
    edges = np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(
        axis=(1, 2)
    )
    fa = t.building_floor_area_m2[inh]
    assert spearman(brightness, fa) > 0.6
    assert spearman(edges, fa) > 0.6


def test_growth_adds_buildings_same_place(syn: SyntheticCountry) -> None:
    r = syn.renderer
    keys = syn._keys
    lots = r.lots(keys)
    b0 = built_fraction(syn.development(SMALL.years[0])).ravel()
    b1 = built_fraction(syn.development(SMALL.years[-1])).ravel()
    m0, m1 = r.building_mask(lots, b0), r.building_mask(lots, b1)
    assert not np.any(m0 & ~m1)  # nothing demolished, nothing moved
    assert m1.sum() > m0.sum()
