"""District aggregates of tile values: what economists regress and compare against census data.

Two assignments are used, on purpose:

* **centroid assignment** (``mean``, ``sum``, ``count``, ``n_tiles``): each tile belongs to the
  one district whose interior contains its centre (``shapely.contains_xy`` on the centres,
  computed from the grid: no polygon per tile), so every tile is counted once and sums add up
  across districts.  Tiles whose centre is in no district
  are not counted and reported in ``attrs['n_outside']``.
* **area weighting** (``area_mean``): every tile that overlaps a district contributes, weighted
  by the area of the tile ∩ district (``geopandas.overlay(how="intersection")`` for the tiles a
  boundary crosses; a tile clear of every boundary is whole inside its district), which is
  fairer to small or thin districts that few tile centres fall into.

Area *weights* are taken in EPSG:3857, where tiles are exact squares.  Its scale distortion
varies with latitude only, and by well under 1 % across a district, so the relative weights
inside one district are unaffected.  Reported *areas* (``area_km2``, used for densities) are
ground areas in an equal-area CRS (EPSG:6933), because Mercator inflates areas by 1/cos²(lat)
(≈ 1.7 at 40° N).

Any polygon layer works: GeoPackage, shapefile, GeoJSON, in any CRS (it is reprojected); a
layer without polygons or without a CRS is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import mercantile
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

from siscore_assets.core.imagery.grid import Tile

CRS_3857 = "EPSG:3857"
CRS_EQUAL_AREA = "EPSG:6933"  # WGS 84 / NSIDC EASE-Grid 2.0 Global (cylindrical equal-area)
_POLYGONAL = {"Polygon", "MultiPolygon"}
TILE_CHUNK = 50_000  # tile squares built at once to find those a boundary crosses


def tile_polygons(df: pd.DataFrame) -> gpd.GeoDataFrame:
    """Tile squares in EPSG:3857 from the exact grid bounds; all columns of ``df`` are kept."""
    geoms = [
        box(*Tile(int(z), int(x), int(y)).bounds_3857())
        for z, x, y in zip(df["z"], df["x"], df["y"], strict=True)
    ]
    return gpd.GeoDataFrame(df.copy(), geometry=geoms, crs=CRS_3857)


def read_polygons(path: str | Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a district layer (GeoPackage, shapefile, GeoJSON, anything pyogrio reads).

    Non-polygon features are dropped (counted in ``attrs['n_dropped_non_polygon']``).  Missing
    file, no polygons or no CRS are errors with a message that says which file: a wrong district
    layer must not fail silently.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"district layer not found: {path}")
    try:
        gdf = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except Exception as e:  # pyogrio's errors don't say which file
        raise ValueError(f"could not read polygons from {path}: {e}") from e
    n_read = len(gdf)
    kinds = ", ".join(sorted(set(gdf.geom_type.dropna()))) or "none"
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    gdf = gdf[gdf.geometry.geom_type.isin(_POLYGONAL)]
    if gdf.empty:
        raise ValueError(f"{path} has no polygon features (geometry types found: {kinds})")
    if gdf.crs is None:
        raise ValueError(f"{path} has no CRS (a shapefile without .prj?); set one before use")
    out = gdf.reset_index(drop=True)
    out.attrs["n_dropped_non_polygon"] = n_read - len(out)
    return out


#: Roles a district layer's attribute columns can play (``districts: {file, <role>: column}``).
FIELD_ROLES = ("id", "province", "name", "population", "population_density")


def district_layer_from_file(
    path: str | Path, fields: Mapping[str, str] | None = None
) -> gpd.GeoDataFrame:
    """A configured district layer in EPSG:3857 with ``district_id`` (0..n-1 when the file has
    none; duplicates are an error naming the file) and ground ``area_km2`` (equal-area CRS).

    ``fields`` names the file's columns by role: ``id`` → ``district_id``, ``province`` →
    ``province`` (the regression's fixed effect and cluster), ``name`` → ``district_name``,
    ``population``; ``population_density`` (people per km²) gives ``population`` = density x
    ground area when the layer has no head count (the NK layer publishes 2008 densities).
    """
    gdf = read_polygons(path).to_crs(CRS_3857)
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(FIELD_ROLES))
    if unknown:
        raise ValueError(
            f"{path}: unknown district field role(s) {unknown} (known: {', '.join(FIELD_ROLES)})"
        )
    absent = sorted(f"{role}: {col}" for role, col in fields.items() if col not in gdf.columns)
    if absent:
        raise ValueError(
            f"{path}: no column(s) {', '.join(absent)} (columns: "
            f"{', '.join(c for c in gdf.columns if c != gdf.geometry.name)})"
        )
    renames = {
        "id": "district_id",
        "province": "province",
        "name": "district_name",
        "population": "population",
        "population_density": "population_density",
    }
    keep = {fields[r]: renames[r] for r in FIELD_ROLES if r in fields}
    for new in keep.values():  # a column of the target name that was not chosen steps aside
        if new in gdf.columns and new not in keep:
            gdf = gdf.rename(columns={new: f"{new}_file"})
    gdf = gdf.rename(columns=keep)
    if "district_id" not in gdf.columns:
        gdf.insert(0, "district_id", range(len(gdf)))
    if gdf["district_id"].duplicated().any():
        raise ValueError(f"{path}: duplicate district_id values; dissolve first")
    if "area_km2" not in gdf.columns:
        gdf["area_km2"] = gdf.to_crs(CRS_EQUAL_AREA).geometry.area / 1e6
    if "population" not in gdf.columns and "population_density" in gdf.columns:
        gdf["population"] = (
            pd.to_numeric(gdf["population_density"], errors="coerce") * gdf["area_km2"]
        )
    return gdf


def district_table(gdf: gpd.GeoDataFrame, country: str) -> pd.DataFrame:
    """The `districts` table: attributes plus the geometry as WKB (no DuckDB extension needed)."""
    frame = pd.DataFrame(gdf.drop(columns="geometry"))
    frame["geometry_wkb"] = gdf.geometry.to_wkb()
    frame.insert(0, "country", country)
    return frame


def _district_frame(districts_gdf: gpd.GeoDataFrame, id_col: str) -> gpd.GeoDataFrame:
    """The layer's ids and polygons in EPSG:3857, checked (ids unique, a CRS)."""
    if id_col not in districts_gdf.columns:
        raise KeyError(f"district layer has no column {id_col!r}")
    if districts_gdf.crs is None:
        raise ValueError("district layer has no CRS")
    if districts_gdf[id_col].duplicated().any():
        raise ValueError(f"duplicate district ids in {id_col!r}; dissolve first")
    dist = districts_gdf[[id_col, districts_gdf.geometry.name]].to_crs(CRS_3857)
    dist = dist.rename_geometry("geometry") if dist.geometry.name != "geometry" else dist
    return dist.reset_index(drop=True)


def tile_bounds_3857(
    z: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(left, bottom, right, top) of tiles in EPSG:3857, vectorised, with
    :func:`mercantile.xy_bounds`'s arithmetic (:func:`tile_polygons`' squares, none built)."""
    size = mercantile.CE / np.power(2.0, np.asarray(z, dtype=float))
    left = np.asarray(x, dtype=float) * size - mercantile.CE / 2
    top = mercantile.CE / 2 - np.asarray(y, dtype=float) * size
    return left, top - size, left + size, top


def tile_centres_3857(z: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tile centres in EPSG:3857: the centroid of :func:`tile_bounds_3857`'s squares."""
    left, bottom, right, top = tile_bounds_3857(z, x, y)
    return (left + right) / 2, (bottom + top) / 2


def _districts_holding(geoms: Sequence, cx: np.ndarray, cy: np.ndarray) -> tuple[np.ndarray, int]:
    """Per point: the position of the first geometry (layer order) whose interior holds it, -1
    outside all; and how many points lie in several.  Bounds first, then shapely's vectorised
    test: no geometry per point (at 400,000 tiles those were a quarter of a GB)."""
    out = np.full(len(cx), -1, np.int64)
    several = np.zeros(len(cx), bool)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        cand = np.flatnonzero((cx >= minx) & (cx <= maxx) & (cy >= miny) & (cy <= maxy))
        if not len(cand):
            continue
        hit = cand[shapely.contains_xy(geom, cx[cand], cy[cand])]
        taken = out[hit] >= 0
        several[hit[taken]] = True
        out[hit[~taken]] = i
    return out, int(several.sum())


def _tile_positions(df: pd.DataFrame, dist: gpd.GeoDataFrame) -> tuple[np.ndarray, int]:
    cx, cy = tile_centres_3857(df["z"].to_numpy(), df["x"].to_numpy(), df["y"].to_numpy())
    return _districts_holding(dist.geometry, cx, cy)


def layer_positions(df: pd.DataFrame, layer: gpd.GeoDataFrame) -> np.ndarray:
    """Per row of ``df`` (z, x, y): the position in any polygon ``layer`` (ids not needed) of the
    first polygon whose interior holds the tile's centre, -1 in none: :func:`tile_districts`'
    rule, for layers keyed otherwise (provinces beside districts)."""
    if layer.crs is None:
        raise ValueError("polygon layer has no CRS")
    return _tile_positions(df, layer.to_crs(CRS_3857).reset_index(drop=True))[0]


def tile_districts(
    df: pd.DataFrame, districts_gdf: gpd.GeoDataFrame, id_col: str = "district_id"
) -> np.ndarray:
    """Per row of ``df`` (z, x, y): the position in ``districts_gdf`` of the district whose
    interior holds the tile's centre, -1 outside every district; a centre in several
    overlapping districts goes to the first in layer order (the centroid assignment of
    :func:`aggregate_by_district`)."""
    return _tile_positions(df, _district_frame(districts_gdf, id_col))[0]


def tile_coverage(where: np.ndarray, districts_gdf: gpd.GeoDataFrame, zoom: int) -> np.ndarray:
    """Per district of ``districts_gdf``: the share of the zoom's tiles whose centre lies in it
    (all of them, in the tiles given or not) that ``where`` (:func:`tile_districts`) assigns to
    it.  Counted in tiles, not areas, so a small district that its tiles fully cover is 1."""
    return counted_coverage(
        np.bincount(where[where >= 0], minlength=len(districts_gdf)), districts_gdf, zoom
    )


def counted_coverage(given: np.ndarray, districts_gdf: gpd.GeoDataFrame, zoom: int) -> np.ndarray:
    """:func:`tile_coverage` from the tiles already counted per district (``given``, in layer
    order: e.g. :func:`aggregate_by_district`'s ``n_tiles``), without assigning them again."""
    size = mercantile.CE / 2.0**zoom
    half = mercantile.CE / 2
    out = np.zeros(len(districts_gdf))
    for i, geom in enumerate(districts_gdf.to_crs(CRS_3857).geometry):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        cols = np.arange(np.floor((minx + half) / size), np.floor((maxx + half) / size) + 1)
        rows = np.arange(np.floor((half - maxy) / size), np.floor((half - miny) / size) + 1)
        total, step = 0, max(1, TILE_CHUNK // max(1, len(cols)))  # bounded: a wide district
        for r in range(0, len(rows), step):
            gx, gy = np.meshgrid(cols, rows[r : r + step])
            cx, cy = tile_centres_3857(np.full(gx.size, zoom), gx.ravel(), gy.ravel())
            total += int(shapely.contains_xy(geom, cx, cy).sum())
        out[i] = given[i] / total if total else 0.0
    return out


def _area_pieces(
    tiles: pd.DataFrame, dist: gpd.GeoDataFrame, id_col: str, value_cols: Sequence[str]
) -> pd.DataFrame:
    """Each (tile, district) overlap with its area ``_a`` (EPSG:3857 m^2) and the tile's values.
    Only tiles that touch a district's boundary are cut (``geopandas.overlay``); a tile clear of
    every boundary lies whole inside each district that holds its centre.  Cutting every tile
    took 26 s and 0.4 GB at 400,000 tiles; the cut tiles are the districts' perimeters."""
    left, bottom, right, top = tile_bounds_3857(*(tiles[c].to_numpy() for c in ("z", "x", "y")))
    tree = shapely.STRtree(dist.geometry.boundary.to_numpy())
    crossing = np.zeros(len(tiles), bool)
    for start in range(0, len(tiles), TILE_CHUNK):
        sl = slice(start, start + TILE_CHUNK)
        boxes = shapely.box(left[sl], bottom[sl], right[sl], top[sl])
        crossing[start + tree.query(boxes, predicate="intersects")[0]] = True
    cx, cy = (left + right) / 2, (bottom + top) / 2
    whole = []
    for i, geom in enumerate(dist.geometry):
        if geom is None or geom.is_empty:
            continue
        minx, miny, maxx, maxy = geom.bounds
        cand = np.flatnonzero(~crossing & (cx >= minx) & (cx <= maxx) & (cy >= miny) & (cy <= maxy))
        hit = cand[shapely.contains_xy(geom, cx[cand], cy[cand])]
        whole.append(pd.DataFrame({"_tile": hit, "_d": i}))
    whole = pd.concat(whole, ignore_index=True) if whole else pd.DataFrame({"_tile": [], "_d": []})
    cols = ["_tile", *value_cols]
    full = tiles.iloc[whole["_tile"].to_numpy()][cols].reset_index(drop=True)
    full[id_col] = dist[id_col].to_numpy()[whole["_d"].to_numpy(dtype=np.int64)]
    full["_a"] = (right - left)[full["_tile"]] * (top - bottom)[full["_tile"]]
    cut = tiles[crossing]
    if len(cut):
        polys = tile_polygons(cut[["z", "x", "y", *cols]])
        part = gpd.overlay(
            polys[[*cols, "geometry"]], dist, how="intersection", keep_geom_type=True
        )
        part = pd.DataFrame(
            {**{c: part[c] for c in cols}, id_col: part[id_col], "_a": part.geometry.area}
        )
        full = pd.concat([full, part], ignore_index=True)
    return full[full["_a"] > 0]


def aggregate_coverage(
    agg: pd.DataFrame, districts_gdf: gpd.GeoDataFrame, zoom: int, id_col: str = "district_id"
) -> pd.Series:
    """Per district id: the share of its tiles (:func:`tile_coverage`) that
    :func:`aggregate_by_district`'s rows counted (``n_tiles``): what a sum over those tiles holds
    of the district's whole."""
    ids = districts_gdf[id_col].to_numpy()
    given = agg.set_index(id_col)["n_tiles"].reindex(ids).fillna(0).to_numpy()
    return pd.Series(counted_coverage(given, districts_gdf, zoom), index=ids)


def aggregate_by_district(
    df: pd.DataFrame,
    value_cols: Sequence[str],
    districts_gdf: gpd.GeoDataFrame,
    id_col: str = "district_id",
) -> pd.DataFrame:
    """Per district: ``n_tiles`` and, for each value column ``c``, ``c_mean``, ``c_sum``,
    ``c_count`` (finite values, centroid assignment) and ``c_area_mean`` (area-weighted over
    overlapping tiles), plus ``area_m2`` (tile area inside the district, EPSG:3857 m², the
    weights' unit) and ``area_km2`` (the district's ground area, equal-area CRS).

    Every district appears, tiles or not (then mean/sum are NaN).  ``attrs`` holds ``n_tiles``,
    ``n_assigned``, ``n_outside`` (centre in no district) and ``n_ambiguous`` (centre in several
    overlapping districts; assigned to the first in layer order).
    """
    value_cols = list(value_cols)
    dist = _district_frame(districts_gdf, id_col)

    tiles = df[["z", "x", "y", *value_cols]].reset_index(drop=True)
    tiles["_tile"] = np.arange(len(tiles))
    for c in value_cols:
        tiles[c] = pd.to_numeric(tiles[c], errors="coerce").astype(float)

    where, n_ambiguous = _tile_positions(tiles, dist)
    joined = tiles.loc[where >= 0, ["_tile", *value_cols]].copy()
    joined[id_col] = dist[id_col].to_numpy()[where[where >= 0]]
    n_outside = len(tiles) - len(joined)

    grouped = joined.groupby(id_col)
    out = pd.DataFrame(index=pd.Index(dist[id_col], name=id_col))
    out["n_tiles"] = grouped.size().reindex(out.index).fillna(0).astype(int)
    for c in value_cols:
        out[f"{c}_mean"] = grouped[c].mean().reindex(out.index)
        out[f"{c}_sum"] = grouped[c].sum(min_count=1).reindex(out.index)
        out[f"{c}_count"] = grouped[c].count().reindex(out.index).fillna(0).astype(int)

    # area weighting
    pieces = _area_pieces(tiles, dist, id_col, value_cols)
    out["area_m2"] = pieces.groupby(id_col)["_a"].sum().reindex(out.index).fillna(0.0)
    out["area_km2"] = (dist.to_crs(CRS_EQUAL_AREA).geometry.area / 1e6).to_numpy()
    for c in value_cols:
        ok = pieces[np.isfinite(pieces[c])]
        num = (ok[c] * ok["_a"]).groupby(ok[id_col]).sum()
        den = ok["_a"].groupby(ok[id_col]).sum()
        out[f"{c}_area_mean"] = (num / den).reindex(out.index)

    out = out.reset_index()
    out.attrs.update(
        n_tiles=len(tiles),
        n_assigned=len(joined),
        n_outside=int(n_outside),
        n_ambiguous=n_ambiguous,
    )
    return out
