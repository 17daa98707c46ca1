"""Where scenes' footprints meet the AOI's tiles, for the per-tile choice (``selection``).

Which tiles a scene covers part of, and, for a tile no scene covers whole (a swath's or a
granule's edge crosses it), which of its SCL sample points each scene's footprint holds: the
points a tile *can* have read at all, so the choice stops reading scenes once the clear reads
cover them (not only once one scene leaves the whole tile clear, which such a tile never gets).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import box

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac.search import Scene

EARTH_RADIUS_M = 6378137.0  # of the Web-Mercator sphere (EPSG:3857)


def tile_points(tiles: list[Tile], points: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) in EPSG:3857 of a ``points`` x ``points`` grid of cell centres in each tile,
    shape (tiles, points * points)."""
    frac = (np.arange(points) + 0.5) / points
    fx, fy = np.meshgrid(frac, frac)
    b = np.array([t.bounds_3857() for t in tiles], dtype=float).reshape(-1, 4)
    xs = b[:, :1] + (b[:, 2:3] - b[:, :1]) * fx.ravel()[None]
    ys = b[:, 3:4] - (b[:, 3:4] - b[:, 1:2]) * fy.ravel()[None]
    return xs, ys


def covering(scenes: list[Scene], tiles: list[Tile]) -> dict[str, list[Tile]]:
    """Per scene, the tiles its footprint covers part of (not only touches), via an R-tree of
    the tiles' boxes (a country's 400,000 tiles are not tested against every scene)."""
    boxes = [box(*t.bounds_lonlat()) for t in tiles]
    tree = shapely.STRtree(boxes)
    out = {}
    for s in scenes:
        shape_ = s.shape
        hits = sorted(int(i) for i in tree.query(shape_, predicate="intersects"))
        out[s.item_id] = [tiles[i] for i in hits if not shape_.touches(boxes[i])]
    return out


def edge_points(
    scenes: list[Scene], cover: dict[str, list[Tile]], points: int
) -> dict[str, dict[str, np.ndarray]]:
    """For each tile that no scene's footprint covers whole: per scene covering part of it
    (``cover``), which of the tile's ``points`` x ``points`` SCL sample points
    (:func:`tile_points`, the ones ``selection.tile_shares`` reads) lie in its footprint, a
    boolean array.  Tiles some footprint covers whole are left out (the usual case: only tiles
    along the edges of the scenes' coverage are listed)."""
    whole: set[str] = set()
    for s in scenes:
        ts = cover[s.item_id]
        inside = shapely.covers(s.shape, [box(*t.bounds_lonlat()) for t in ts])
        whole.update(t.tile_id for t, w in zip(ts, inside) if w)
    edge = {t.tile_id: t for s in scenes for t in cover[s.item_id] if t.tile_id not in whole}
    out: dict[str, dict[str, np.ndarray]] = {tid: {} for tid in edge}
    if not edge:
        return out
    row = {tid: i for i, tid in enumerate(edge)}
    xs, ys = tile_points(list(edge.values()), points)
    lon = np.degrees(xs / EARTH_RADIUS_M)
    lat = np.degrees(2.0 * np.arctan(np.exp(ys / EARTH_RADIUS_M)) - np.pi / 2.0)
    for s in scenes:
        ts = [t.tile_id for t in cover[s.item_id] if t.tile_id in edge]
        if not ts:
            continue
        rows = [row[tid] for tid in ts]
        inside = shapely.contains_xy(s.shape, lon[rows], lat[rows])
        for tid, mask in zip(ts, inside):
            out[tid][s.item_id] = mask
    return out
