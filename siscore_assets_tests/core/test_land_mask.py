"""The GLOBE land mask read for one window: known land, sea and lake points, on both sides of the
equator and the meridian, without loading the 933 MB mask."""

import numpy as np
import psutil

from siscore_assets.core.land_mask import CELLS_PER_DEGREE, LandMask


def test_known_points_in_windows_north_and_south():
    korea = LandMask((124.0, 36.0, 131.0, 43.0))
    # Pyongyang, Wonsan's hinterland; the Yellow Sea, the East Sea
    assert korea.is_land(np.array([125.75, 127.2]), np.array([39.02, 39.0])).tolist() == [1, 1]
    assert korea.is_land(np.array([124.2, 130.0]), np.array([37.0, 40.0])).tolist() == [0, 0]
    africa = LandMask((28.0, -3.0, 34.0, 1.0))
    # Kigali; Lake Victoria counts as land (the mask's sea is the ocean)
    assert africa.is_land(np.array([30.06, 33.0]), np.array([-1.95, -1.0])).all()
    pacific = LandMask((-151.0, -1.0, -149.0, 1.0))
    assert not pacific.cells.any()
    assert pacific.cells.shape == (2 * CELLS_PER_DEGREE + 1, 2 * CELLS_PER_DEGREE + 1)


def test_a_window_costs_megabytes_not_the_whole_mask():
    before = psutil.Process().memory_info().rss
    LandMask((-20.0, -35.0, 50.0, 35.0))  # Africa's width: 8,400 x 8,400 cells
    assert psutil.Process().memory_info().rss - before < 300e6
