"""`validation_internal`'s zero-filter variant: 0 where the year's verdict is uninhabited, a
tile-year that was not scored stays missing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siscore_assets.core.models.evaluation import zero_filtered


def test_zero_filter_zeroes_uninhabited_and_keeps_unscored_missing():
    raw = pd.DataFrame(
        {2016: [0.2, 0.7, np.nan, 0.4], 2017: [0.3, 0.8, 0.5, np.nan]}, index=list("abcd")
    )
    inhabited = pd.DataFrame(
        {2016: [True, False, None], 2017: [True, True, False]}, index=list("abc")
    )
    out = zero_filtered(raw, inhabited)
    expect = pd.DataFrame(
        {2016: [0.2, 0.0, np.nan, 0.0], 2017: [0.3, 0.8, 0.0, np.nan]}, index=list("abcd")
    )
    pd.testing.assert_frame_equal(out, expect)
