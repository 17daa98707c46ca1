"""benchmarks/change_localised.py: the mask finds an added roof and not a year's even shift, and
the localised delta of a linear score is the roof's alone (the shift outside it cancels)."""

from __future__ import annotations

import numpy as np

from benchmarks.change_localised import change_mask, localised_delta


def test_a_new_roof_is_masked_and_the_years_shift_cancels():
    rng = np.random.default_rng(0)
    a = (100 + rng.integers(-3, 4, size=(2, 32, 32, 3))).astype(np.uint8)
    b = (a.astype(int) + 20).astype(np.uint8)  # the later year: every pixel 20 brighter
    b[0, 8:12, 8:12] = 250  # and a new roof on the first tile
    mask = change_mask(a, b, k=3, min_abs=10, dilate=0)
    assert mask[0, 8:12, 8:12].all() and mask[0].sum() == 16
    assert not mask[1].any()  # an even shift is the tile's median, not change

    def mean_score(x):
        return x.astype(float).mean(axis=(1, 2, 3))

    delta = localised_delta(mean_score, a, b, mask)
    roof = (b[0, 8:12, 8:12].astype(float) - a[0, 8:12, 8:12]).sum() / (32 * 32 * 3)
    assert np.isclose(delta[0], roof) and delta[1] == 0
    plain = mean_score(b) - mean_score(a)
    assert plain[0] > delta[0] and np.isclose(plain[1], 20)
