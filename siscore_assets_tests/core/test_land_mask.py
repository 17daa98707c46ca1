"""The GLOBE land mask streamed row by row: known land, sea and lake points on both sides of the
equator and of the Greenwich meridian, against the package's own array; bad input refused."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from siscore_assets.core import land_mask


def test_known_points_north_south_east_and_west():
    lon = np.array([125.75, 127.23, 124.23, 130.03, 30.06, 33.03, -150.03, -0.13, 0.53, 1.53])
    lat = np.array([39.03, 39.03, 37.03, 40.03, -1.95, -1.03, 0.03, 51.51, 51.53, 50.53])
    # Pyongyang, inland Korea; the Yellow Sea, the East Sea; Kigali, Lake Victoria (a lake is
    # land); the Pacific; London (west of Greenwich), Essex (east); the Channel
    want = [True, True, False, False, True, True, False, True, True, False]
    assert land_mask.is_land(lon, lat).tolist() == want


def test_rows_equal_the_packages_array():
    """200 random points in each of three windows against the package's array, read here with
    numpy's own npy reader (the whole mask, once: ~1 GB for this one test)."""
    rng = np.random.default_rng(0)
    boxes = ((124.0, 36.0, 131.0, 43.0), (-5.0, -3.0, 5.0, 3.0), (-75.0, -56.0, -65.0, -50.0))
    lon = np.concatenate([rng.uniform(b[0], b[2], 200) for b in boxes])
    lat = np.concatenate([rng.uniform(b[1], b[3], 200) for b in boxes])
    with zipfile.ZipFile(land_mask._mask_file()) as npz, npz.open("mask.npy") as f:  # noqa: SLF001
        ocean = np.lib.format.read_array(f)[land_mask.mask_row(lat), land_mask.mask_col(lon)]
    got = land_mask.is_land(lon, lat)
    assert got.tolist() == (~ocean).tolist()
    assert 0.1 < got.mean() < 0.9  # the windows hold both land and sea


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="latitude outside"):
        land_mask.is_land(np.array([0.0]), np.array([91.0]))
    with pytest.raises(ValueError, match="longitude outside"):
        land_mask.is_land(np.array([181.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="north to south"):
        list(land_mask.land_rows([10.0, 20.0]))


def test_counting_a_continents_rows_stays_small():
    """Every row from 35° N to 35° S streamed: the process's peak stays far below the 933 MB
    that importing the package costs."""
    code = (  # VmHWM: this process's own peak (ru_maxrss would count the forking parent's)
        "import re, numpy as np\n"
        "from siscore_assets.core import land_mask\n"
        "n = sum(int(r.sum()) for r in land_mask.land_rows(np.linspace(35, -35, 2000)))\n"
        "kb = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(n, int(kb) * 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    land_cells, peak = (int(v) for v in out.stdout.split())
    assert land_cells > 1000 and peak < 400e6
