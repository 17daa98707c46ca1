"""Which points of the Earth are land: the GLOBE 1 km land mask of the ``global-land-mask`` package
(MIT), read offline from its own file.  Land includes most lakes: what is not land is the sea.

Why not ``global_land_mask.globe`` (or importing the package at all, which imports it): it
decompresses the whole 21,600 x 43,200 ocean mask (933 MB) into memory.  The mask is one
row-major boolean array in the package's ``.npz``, so :class:`LandMask` streams it once and keeps
only the rows and columns of one window (an AOI's bounding box): a few MB even for a country.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np

#: Cells per degree (30 arc-seconds, ~0.93 km at the equator); row 0 is 90° N, column 0 180° W.
CELLS_PER_DEGREE = 120
_ROWS, _COLS = 180 * CELLS_PER_DEGREE, 360 * CELLS_PER_DEGREE
_MEMBER = "mask.npy"


def _mask_file() -> Path:
    """The package's mask file, found without importing the package."""
    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("global-land-mask is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "globe_combined_mask_compressed.npz"


def _row(lat: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((90.0 - lat) * CELLS_PER_DEGREE), 0, _ROWS - 1).astype(np.int64)


def _col(lon: np.ndarray) -> np.ndarray:
    return np.clip(np.floor((lon + 180.0) * CELLS_PER_DEGREE), 0, _COLS - 1).astype(np.int64)


class LandMask:
    """The land mask over the lon/lat window ``bounds`` = (W, S, E, N)."""

    def __init__(self, bounds: tuple[float, float, float, float]):
        w, s, e, n = bounds
        self.r0, r1 = int(_row(np.array(n))), int(_row(np.array(s)))
        self.c0, c1 = int(_col(np.array(w))), int(_col(np.array(e)))
        self.cells = np.zeros((r1 - self.r0 + 1, c1 - self.c0 + 1), dtype=bool)
        with zipfile.ZipFile(_mask_file()) as npz, npz.open(_MEMBER) as f:
            header = (
                np.lib.format.read_array_header_1_0
                if np.lib.format.read_magic(f) == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = header(f)
            if shape != (_ROWS, _COLS) or fortran or dtype != np.dtype(bool):
                raise RuntimeError(f"global-land-mask: unexpected mask {shape} {dtype}")
            skip = self.r0 * _COLS
            while skip:  # decompress and drop the rows north of the window
                skip -= len(f.read(min(skip, 1 << 24)))
            for i in range(len(self.cells)):
                row = np.frombuffer(f.read(_COLS), dtype=np.uint8)
                self.cells[i] = row[self.c0 : c1 + 1] == 0  # the file marks the ocean

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each lon/lat point (inside the window) is land."""
        rows = np.clip(_row(np.asarray(lat, dtype=float)) - self.r0, 0, len(self.cells) - 1)
        cols = np.clip(_col(np.asarray(lon, dtype=float)) - self.c0, 0, self.cells.shape[1] - 1)
        return self.cells[rows, cols]
