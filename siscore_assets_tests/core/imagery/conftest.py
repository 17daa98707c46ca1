"""Fixtures of the synthetic-country tests: the small country and its last year (built once per
test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.imagery.synthetic import SyntheticCountry
from siscore_assets_tests.fixtures.synthetic_small import SMALL


@pytest.fixture(scope="module")
def syn() -> SyntheticCountry:
    return SyntheticCountry(SMALL)


@pytest.fixture(scope="module")
def last_year(syn: SyntheticCountry) -> tuple[np.ndarray, pd.DataFrame]:
    y = SMALL.years[-1]
    return syn.tile_images(y), syn.tile_truth(y)
