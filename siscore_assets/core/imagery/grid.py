"""The canonical grid: Web-Mercator XYZ tiles (zoom 14 by default), ids written ``z/x/y``.

Yearly tiles with the same id are the same place, which is what makes change maps and panels
possible.  Bounds come from mercantile so they match every XYZ tile server exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import mercantile
import numpy as np

DEFAULT_ZOOM = 14
_ZXY = re.compile(r"^(\d{1,2})/(\d+)/(\d+)$")
_YX = re.compile(r"^(\d+)_(\d+)$")


@dataclass(frozen=True, order=True, slots=True)  # slots: a country's year holds 400,000 of them
class Tile:
    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        n = 1 << self.z
        if not (0 <= self.x < n and 0 <= self.y < n):
            raise ValueError(f"tile {self.z}/{self.x}/{self.y} is outside the zoom-{self.z} grid")

    @property
    def tile_id(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"

    @property
    def yx_name(self) -> str:
        """The shared NK sample's file stem: ``row_column``."""
        return f"{self.y}_{self.x}"

    def bounds_3857(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in EPSG:3857 metres."""
        b = mercantile.xy_bounds(self.x, self.y, self.z)
        return (b.left, b.bottom, b.right, b.top)

    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        b = mercantile.bounds(self.x, self.y, self.z)
        return (b.west, b.south, b.east, b.north)

    def center_lonlat(self) -> tuple[float, float]:
        w, s, e, n = self.bounds_lonlat()
        return ((w + e) / 2.0, (s + n) / 2.0)


def parse_tile_id(text: str, zoom: int = DEFAULT_ZOOM) -> Tile:
    """Accept ``z/x/y`` or the NK sample's ``y_x`` (at ``zoom``); anything else is an error."""
    s = text.strip()
    m = _ZXY.match(s)
    if m:
        return Tile(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = _YX.match(s)
    if m:
        return Tile(zoom, int(m.group(2)), int(m.group(1)))
    raise ValueError(f"not a tile id: {text!r} (expected 'z/x/y' or 'y_x')")


def tile_id(z: int, x: int, y: int) -> str:
    return f"{z}/{x}/{y}"


def tiles_in_block(z: int, x0: int, y0: int, nx: int, ny: int) -> list[Tile]:
    """Row-major tiles of a rectangular block (row = y, top first)."""
    return [Tile(z, x0 + i, y0 + j) for j in range(ny) for i in range(nx)]


def block_bounds_3857(
    z: int, x0: int, y0: int, nx: int, ny: int
) -> tuple[float, float, float, float]:
    """Exact EPSG:3857 bounds of a block of tiles: the outer edges of its corner tiles."""
    left, _, _, top = Tile(z, x0, y0).bounds_3857()
    _, bottom, right, _ = Tile(z, x0 + nx - 1, y0 + ny - 1).bounds_3857()
    return (left, bottom, right, top)


def block_for_lonlat_bbox(
    west: float, south: float, east: float, north: float, z: int = DEFAULT_ZOOM
) -> tuple[int, int, int, int]:
    """(x0, y0, nx, ny) of the tiles covering a lon/lat bbox."""
    ul = mercantile.tile(west, north, z)
    lr = mercantile.tile(east - 1e-9, south + 1e-9, z)
    return (ul.x, ul.y, lr.x - ul.x + 1, lr.y - ul.y + 1)


def aoi_tile_range(aoi, z: int = DEFAULT_ZOOM) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1), inclusive: the tiles ``mercantile.tiles`` yields over the bounds of the
    lon/lat geometry ``aoi`` (clamped to the Web-Mercator limits); an empty range for an empty
    geometry, whose bounds are NaN."""
    if aoi.is_empty:
        return 0, -1, 0, -1
    w, s, e, n = aoi.bounds
    w, s = max(-180.0, w), max(-85.051129, s)
    e, n = min(180.0, e), min(85.051129, n)
    ul = mercantile.tile(w, n, z)
    lr = mercantile.tile(e - mercantile.LL_EPSILON, s + mercantile.LL_EPSILON, z)
    return ul.x, lr.x, ul.y, lr.y


def aoi_tile_rows(aoi, z: int = DEFAULT_ZOOM) -> Iterator[tuple[int, np.ndarray]]:
    """(y, sorted x of the row's tiles whose box intersects the lon/lat geometry ``aoi``) for
    every row of :func:`aoi_tile_range`, north to south, one row of boxes at a time (a
    country's grid is never held at once)."""
    import shapely

    shapely.prepare(aoi)
    x0, x1, y0, y1 = aoi_tile_range(aoi, z)
    xs = np.arange(x0, x1 + 1)
    # mercantile.ul's longitude, vectorised: tile x's west edge, x + 1's the east
    west = xs / 2.0**z * 360.0 - 180.0
    east = (xs + 1) / 2.0**z * 360.0 - 180.0
    for y in range(y0, y1 + 1):
        b = mercantile.bounds(x0, y, z)
        yield y, xs[shapely.intersects(aoi, shapely.box(west, b.south, east, b.north))]


def aoi_tiles(aoi, z: int = DEFAULT_ZOOM) -> list[Tile]:
    """The grid tiles that intersect the lon/lat geometry ``aoi``, sorted: what a STAC
    country's ingest warps, and what ``siscore country add`` counts."""
    return sorted(Tile(z, int(x), y) for y, row in aoi_tile_rows(aoi, z) for x in row)
