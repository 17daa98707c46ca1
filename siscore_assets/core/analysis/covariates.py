"""Tile covariates for the paper's regression design, derived from point and polygon layers.

From a points-of-interest layer (``kind``: capital, provincial_hub, county_hub, mine,
nuclear_site, edz; ``edz_type`` for zones; points or, for zones, polygons) and the district
polygons, every tile gets:

* ``dist_capital_km``, ``dist_provincial_km`` (capital or provincial hub), ``dist_county_km``
  (any seat): geodesic distance (WGS 84 ellipsoid) from the tile centre, as the paper measures
  proximity from a grid's centre to each hub's centre;
* ``in_edz`` and one dummy ``edz_<type>`` per zone type: the tile centre is inside a zone polygon,
  or within ``edz_radius_km`` of a zone given as a point;
* ``near_mine`` / ``near_nuclear``: the tile contains such a site or touches a tile that does
  (8-neighbourhood), the paper's adjacency rule;
* ``dist_<kind>_km`` for any other kind of point (e.g. ``port``, ``checkpoint``), and
  ``near_mine_<type>`` per mine type when the mines carry one (``mine_type``);
* ``district_id`` and the district's ``province`` / ``province_id`` (tile centre within the
  polygon; NA outside every district).

The layer is either one file with a ``kind`` column or, with :func:`read_point_layers`, one
file per kind (``{kind: file}`` or ``{kind: {file, type: column}}`` in the countries file), as
the paper's layers come (ports, zones, mines and nuclear sites in separate shapefiles).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import mercantile
import numpy as np
import pandas as pd
from pyproj import Geod

from siscore_assets.core.analysis.districts import layer_positions

HUB_KINDS = {
    "dist_capital_km": ("capital",),
    "dist_provincial_km": ("capital", "provincial_hub"),
    "dist_county_km": ("capital", "provincial_hub", "county_hub"),
}
SITE_KINDS = {"near_mine": "mine", "near_nuclear": "nuclear_site"}
EDZ_KIND = "edz"
#: The per-feature type column each kind's ``type`` field becomes.
TYPE_COLUMNS = {EDZ_KIND: "edz_type", "mine": "mine_type"}
_POINTS = {"Point", "MultiPoint"}
ZONE_GEOMETRIES = _POINTS | {"Polygon", "MultiPolygon"}
DEFAULT_EDZ_RADIUS_KM = 3.0
_GEOD = Geod(ellps="WGS84")
_KNOWN_KINDS = (
    {k for kinds in HUB_KINDS.values() for k in kinds} | set(SITE_KINDS.values()) | {EDZ_KIND}
)


def tile_centres(tiles: pd.DataFrame) -> gpd.GeoDataFrame:
    """Tile centres (lon/lat, EPSG:4326) of a frame with ``z, x, y``."""
    pts = []
    for z, x, y in zip(tiles["z"], tiles["x"], tiles["y"], strict=True):
        b = mercantile.bounds(int(x), int(y), int(z))
        pts.append(((b.west + b.east) / 2, (b.south + b.north) / 2))
    lon, lat = (
        (np.array(v, dtype=float) for v in zip(*pts, strict=True))
        if pts
        else (np.empty(0), np.empty(0))
    )
    return gpd.GeoDataFrame(
        tiles.reset_index(drop=True).copy(), geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326"
    )


def _nearest_km(lon: np.ndarray, lat: np.ndarray, sites: gpd.GeoDataFrame) -> np.ndarray:
    """Geodesic km from every (lon, lat) to the nearest site (site centroids); NaN if none."""
    if sites.empty:
        return np.full(len(lon), np.nan)
    cent = sites.geometry.centroid if not (sites.geom_type == "Point").all() else sites.geometry
    best = np.full(len(lon), np.inf)
    for px, py in zip(cent.x, cent.y, strict=True):
        _, _, d = _GEOD.inv(lon, lat, np.full(len(lon), px), np.full(len(lat), py))
        best = np.minimum(best, np.asarray(d) / 1000.0)
    return best


def _adjacent(tiles: pd.DataFrame, sites: gpd.GeoDataFrame, zoom: int) -> np.ndarray:
    """Whether each tile contains a site or touches a tile that does (8-neighbourhood)."""
    out = np.zeros(len(tiles), dtype=bool)
    if sites.empty:
        return out
    pts = sites.geometry if (sites.geom_type == "Point").all() else sites.geometry.centroid
    tx, ty = tiles["x"].to_numpy(), tiles["y"].to_numpy()
    for lon, lat in zip(pts.x, pts.y, strict=True):
        t = mercantile.tile(lon, lat, zoom)
        out |= (np.abs(tx - t.x) <= 1) & (np.abs(ty - t.y) <= 1)
    return out


def read_layer(path: str | Path, allowed: set[str], what: str) -> gpd.GeoDataFrame:
    """One vector layer, checked: it reads, has a CRS and only ``allowed`` geometry types; every
    problem is an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} layer not found: {path}")
    try:
        gdf = gpd.read_file(path)
    except Exception as e:  # pyogrio's errors don't say which file
        raise ValueError(
            f"{path}: could not read the {what} layer: {' '.join(str(e).split())}"
        ) from None
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].reset_index(drop=True)
    if gdf.empty:
        raise ValueError(f"{path}: the {what} layer has no features")
    if gdf.crs is None:
        raise ValueError(
            f"{path}: the {what} layer has no CRS (a shapefile without .prj?); set one before use"
        )
    wrong = sorted(set(gdf.geom_type) - allowed)
    if wrong:
        raise ValueError(
            f"{path}: the {what} layer has {', '.join(wrong)} geometries; expected "
            f"{' or '.join(sorted(allowed))}"
        )
    return gdf


def read_point_layers(spec: Mapping[str, Any], resolve: Callable[[str], Path]) -> gpd.GeoDataFrame:
    """One points-of-interest frame (EPSG:4326; ``kind``, ``name``, ``edz_type`` / ``mine_type``)
    from one layer file per kind: ``{kind: file}`` or ``{kind: {file: ..., type: column}}``.

    Zones (``edz``) may be points or polygons, every other kind points (a multipoint counts by
    its centroid).  ``type`` names the column giving each zone's class or each mine's mineral."""
    parts = []
    for kind, entry in spec.items():
        opts = {"file": entry} if isinstance(entry, str) else dict(entry)
        path = resolve(str(opts["file"]))
        gdf = read_layer(
            path, ZONE_GEOMETRIES if kind == EDZ_KIND else _POINTS, f"{kind} covariate"
        )
        gdf = gdf.to_crs("EPSG:4326")
        frame = gpd.GeoDataFrame(
            {"kind": [str(kind)] * len(gdf)}, geometry=gdf.geometry.values, crs="EPSG:4326"
        )
        frame["name"] = gdf["Name"].astype(str).values if "Name" in gdf.columns else None
        if opts.get("type"):
            col = str(opts["type"])
            if col not in gdf.columns:
                raise ValueError(
                    f"{path}: no column {col!r} for the {kind} type (columns: "
                    f"{', '.join(c for c in gdf.columns if c != gdf.geometry.name)})"
                )
            frame[TYPE_COLUMNS.get(str(kind), f"{kind}_type")] = (
                gdf[col]
                .astype(str)
                .str.strip()
                .str.lower()
                .str.replace(r"\W+", "_", regex=True)
                .values
            )
        parts.append(frame)
    if not parts:
        raise ValueError("covariates: no point layers configured")
    return gpd.GeoDataFrame(
        pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:4326"
    )


def derive_covariates(
    tiles: pd.DataFrame,
    poi: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame | None = None,
    *,
    edz_types: tuple[str, ...] | None = None,
    edz_radius_km: float = DEFAULT_EDZ_RADIUS_KM,
) -> pd.DataFrame:
    """One row per tile of ``tiles`` (``tile_id, z, x, y``) with the covariates described above.

    ``edz_types`` fixes the dummy columns (default: the types present in the layer), so a
    country's table has the same columns whether or not a type has a zone.
    """
    if poi.crs is None:
        raise ValueError("points-of-interest layer has no CRS")
    missing = {"kind"} - set(poi.columns)
    if missing:
        raise KeyError(f"points-of-interest layer lacks column(s) {sorted(missing)}")
    zooms = set(tiles["z"].astype(int))
    if len(zooms) > 1:
        raise ValueError(f"tiles of several zoom levels: {sorted(zooms)}")
    zoom = zooms.pop() if zooms else 14
    cent = tile_centres(tiles[["tile_id", "z", "x", "y"]])
    lon, lat = cent.geometry.x.to_numpy(), cent.geometry.y.to_numpy()
    poi = poi.to_crs("EPSG:4326")
    out = pd.DataFrame(cent.drop(columns="geometry"))
    for col, kinds in HUB_KINDS.items():
        if poi["kind"].isin(kinds).any() or set(poi["kind"]) <= _KNOWN_KINDS:
            out[col] = _nearest_km(lon, lat, poi[poi["kind"].isin(kinds)])
    for kind in sorted(
        set(poi["kind"]) - _KNOWN_KINDS
    ):  # ports, checkpoints, ...: distance to the nearest
        out[f"dist_{kind}_km"] = _nearest_km(lon, lat, poi[poi["kind"] == kind])
    zones = poi[poi["kind"] == EDZ_KIND].reset_index(drop=True)
    types = (
        edz_types
        if edz_types is not None
        else tuple(sorted(set(zones.get("edz_type", pd.Series(dtype=object)).dropna())))
    )
    edz_type = pd.Series([None] * len(out), dtype=object)
    best = np.full(len(out), np.inf)
    for z in zones.itertuples():
        geom = z.geometry
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            inside = cent.geometry.within(geom).to_numpy()
            d = np.where(inside, 0.0, np.inf)
        else:
            _, _, d = _GEOD.inv(lon, lat, np.full(len(lon), geom.x), np.full(len(lat), geom.y))
            d = np.asarray(d) / 1000.0
            d = np.where(d <= edz_radius_km, d, np.inf)
        closer = d < best  # a tile in several zones takes the nearest zone's type
        edz_type[closer] = getattr(z, "edz_type", None)
        best = np.minimum(best, d)
    out["in_edz"] = np.isfinite(best)
    out["edz_type"] = edz_type.where(out["in_edz"], None)
    for t in types:
        out[f"edz_{t}"] = (out["edz_type"] == t).to_numpy()
    for col, kind in SITE_KINDS.items():
        out[col] = _adjacent(out, poi[poi["kind"] == kind], zoom)
    if "mine_type" in poi.columns:
        mines = poi[poi["kind"] == "mine"]
        for t in sorted(set(mines["mine_type"].dropna())):
            out[f"near_mine_{t}"] = _adjacent(out, mines[mines["mine_type"] == t], zoom)
    keep = (
        [c for c in ("district_id", "province_id", "province") if c in districts.columns]
        if (districts is not None and len(districts))
        else []
    )
    if keep:
        # the rule of every district table: the interior holding the tile's (EPSG:3857) centre,
        # the first in layer order where several overlap
        where = layer_positions(tiles, districts)
        rows = districts.iloc[np.where(where >= 0, where, 0)].reset_index(drop=True)
        for c in keep:
            col = rows[c].where(pd.Series(where >= 0))
            out[c] = (
                col.astype("Int64").to_numpy()
                if c.endswith("_id") and pd.api.types.is_numeric_dtype(col)
                else col.to_numpy()
            )
    return out
