"""Which points of the Earth are land: the GLOBE 1 km land mask of the ``global-land-mask`` package
(MIT), read offline from its own file.  Land includes most lakes: what is not land is the sea.

Why not ``global_land_mask.globe`` (or importing the package at all, which imports it): it
decompresses the whole 21,600 x 43,200 ocean mask (933 MB) into memory.  The mask is one
row-major boolean array in the package's ``.npz``, so :func:`land_rows` streams it once, north to
south, and hands over one 43 KB row at a time: a country's tiles are counted in constant memory.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

#: Cells per degree (30 arc-seconds, ~0.93 km at the equator); row 0 is 90° N, column 0 180° W.
CELLS_PER_DEGREE = 120
_ROWS, _COLS = 180 * CELLS_PER_DEGREE, 360 * CELLS_PER_DEGREE
_MEMBER = "mask.npy"


class LandMaskError(RuntimeError):
    """The land mask cannot be read (the package missing or its file not the expected array)."""


def _mask_file() -> Path:
    """The package's mask file, found without importing the package."""
    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or not spec.submodule_search_locations:
        raise LandMaskError("the land mask (package global-land-mask) is missing: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "globe_combined_mask_compressed.npz"


def mask_row(lat: float | np.ndarray) -> np.ndarray:
    """The mask row of each latitude (degrees, -90..90)."""
    lat = np.asarray(lat, dtype=float)
    if np.any(np.abs(lat) > 90):
        raise ValueError(f"latitude outside -90..90: {lat[np.abs(lat) > 90][:3]}")
    return np.clip(np.floor((90.0 - lat) * CELLS_PER_DEGREE), 0, _ROWS - 1).astype(np.int64)


def mask_col(lon: float | np.ndarray) -> np.ndarray:
    """The mask column of each longitude (degrees, -180..180)."""
    lon = np.asarray(lon, dtype=float)
    if np.any(np.abs(lon) > 180):
        raise ValueError(f"longitude outside -180..180: {lon[np.abs(lon) > 180][:3]}")
    return np.clip(np.floor((lon + 180.0) * CELLS_PER_DEGREE), 0, _COLS - 1).astype(np.int64)


def land_rows(lats: Sequence[float] | np.ndarray) -> Iterator[np.ndarray]:
    """For each latitude, north to south (non-increasing), the mask's row there as booleans over
    :func:`mask_col` (True = land); one pass over the file, one row in memory."""
    rows = mask_row(np.asarray(lats, dtype=float).reshape(-1))
    if np.any(np.diff(rows) < 0):
        raise ValueError("land_rows: latitudes must run north to south")
    try:
        npz = zipfile.ZipFile(_mask_file())
    except (OSError, zipfile.BadZipFile) as exc:
        raise LandMaskError(f"the land mask cannot be read: {exc}") from None
    with npz, npz.open(_MEMBER) as f:
        header = (
            np.lib.format.read_array_header_1_0
            if np.lib.format.read_magic(f) == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = header(f)
        if shape != (_ROWS, _COLS) or fortran or dtype != np.dtype(bool):
            raise LandMaskError(f"global-land-mask: unexpected mask {shape} {dtype}")
        at, land = 0, np.zeros(0, dtype=bool)  # the next row the stream gives; the last row read
        for row in rows:
            if row >= at:
                skip = (int(row) - at) * _COLS
                while skip:  # decompress and drop the rows in between
                    skip -= len(f.read(min(skip, 1 << 24)))
                land = np.frombuffer(f.read(_COLS), dtype=np.uint8) == 0  # the file marks sea
                at = int(row) + 1
            yield land


def is_land(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Whether each lon/lat point is land (one pass over the mask, sorted north to south)."""
    lon, lat = np.asarray(lon, dtype=float).reshape(-1), np.asarray(lat, dtype=float).reshape(-1)
    order = np.argsort(-lat, kind="stable")
    out = np.zeros(len(lat), dtype=bool)
    cols = mask_col(lon)
    for i, row in zip(order, land_rows(lat[order])):
        out[i] = row[cols[i]]
    return out
