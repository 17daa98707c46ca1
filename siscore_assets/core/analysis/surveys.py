"""Household-survey points (DHS and similar) as a tile proxy, with their displacement undone in
expectation.

Surveys publish cluster coordinates displaced on purpose: DHS moves an urban cluster up to 2 km,
a rural one up to 5 km, and 1 % of rural ones up to 10 km, in a uniformly drawn direction at a
uniformly drawn distance.  Seed 003 handles this by adding duplicated points at random inside
each buffer.  Here the tile values are the *exact expectation* over the displacement instead: the
true location of a published point is distributed like the displacement itself (uniform angle,
uniform distance up to the radius), which is uniform in polar coordinates, so an equal-weight
polar grid (``rings`` x ``rays`` midpoints) is a deterministic quadrature of it.  Each cluster
spreads its weight over the tiles its true location may be in, in proportion to that
probability; a tile's value is the weighted mean of the clusters' values by that mass, and its
``mass`` is the expected number of clusters in it.  Why not duplicated points: no sampling noise
and no seed, the same file gives the same tiles, and the error of the quadrature is known and
small (it converges as the grid is refined); duplicates approximate the same expectation with
Monte-Carlo error.

Distances are ground kilometres, turned into Web-Mercator metres by 1 / cos(latitude).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.grid import block_bounds_3857, tile_id

EARTH_RADIUS_M = 6378137.0
ORIGIN = np.pi * EARTH_RADIUS_M  # half the Web-Mercator world width, metres
_TRUE = {"true", "1", "yes", "t", "y", "urban", "u"}
_FALSE = {"false", "0", "no", "f", "n", "rural", "r"}


class SurveyFileError(ValueError):
    """A survey file or rule that cannot be used: one line naming the file and row."""


@dataclass(frozen=True)
class Displacement:
    """How far published points were moved: DHS's rule by default (km, share of rural points
    moved up to ``rural_far_km``); all zero means the coordinates are exact."""

    urban_km: float = 2.0
    rural_km: float = 5.0
    rural_far_share: float = 0.01
    rural_far_km: float = 10.0

    def __post_init__(self) -> None:
        for name in ("urban_km", "rural_km", "rural_far_km"):
            if not getattr(self, name) >= 0:
                raise SurveyFileError(
                    f"displacement.{name} must be >= 0, got {getattr(self, name)}"
                )
        if not 0 <= self.rural_far_share <= 1:
            raise SurveyFileError(
                f"displacement.rural_far_share must be in [0, 1], got {self.rural_far_share}"
            )

    def components(self, urban: bool) -> list[tuple[float, float]]:
        """(probability, radius km) of the displacement mixture for an urban or rural point."""
        if urban:
            return [(1.0, self.urban_km)]
        far = self.rural_far_share
        return (
            [(1.0 - far, self.rural_km), (far, self.rural_far_km)]
            if far
            else [(1.0, self.rural_km)]
        )


def lonlat_to_3857(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.radians(lon) * EARTH_RADIUS_M
    y = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * EARTH_RADIUS_M
    return x, y


def _flag(raw: pd.Series) -> pd.Series:
    text = raw.astype(str).str.strip().str.lower()
    return text.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)


def read_surveys(
    path: str | Path,
    *,
    value: str,
    year: str,
    urban: str,
    weight: str | None = None,
    lon: str = "lon",
    lat: str = "lat",
    bounds_3857: tuple[float, float, float, float],
    years: Collection[int],
) -> pd.DataFrame:
    """Survey clusters from a CSV (``lon``/``lat`` columns, WGS 84) or a point layer (GeoPackage,
    any CRS): x, y (EPSG:3857 m), lat, value, year, urban, weight, row.  The first bad row
    (outside the country's bounds, a missing or unconfigured year, a non-numeric value, an
    urban flag that is not one, a negative weight) is one line ``FILE:ROW: problem``."""
    path = Path(path)
    if not path.is_file():
        raise SurveyFileError(f"{path}: survey file not found")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        frame.columns = [c.strip() for c in frame.columns]
        need = [lon, lat]
        first_row = 2  # row 1 is the header
    else:
        import geopandas as gpd

        layer = gpd.read_file(path)
        if layer.crs is None:
            raise SurveyFileError(f"{path}: the layer has no CRS")
        pts = layer.to_crs("EPSG:4326")
        if not pts.geometry.geom_type.eq("Point").all():
            raise SurveyFileError(f"{path}: survey features must be points")
        frame = pd.DataFrame(layer.drop(columns=layer.geometry.name)).astype(str)
        frame[lon], frame[lat] = pts.geometry.x.astype(str), pts.geometry.y.astype(str)
        need, first_row = [], 1  # feature 1 is the first row
    missing = [
        c for c in (*need, value, year, urban, *([weight] if weight else [])) if c not in frame
    ]
    if missing:
        raise SurveyFileError(
            f"{path}:1: missing column(s) {', '.join(missing)} (columns: {', '.join(frame)})"
        )
    lo, la = (pd.to_numeric(frame[c], errors="coerce") for c in (lon, lat))
    x, y = lonlat_to_3857(lo.to_numpy(float), la.to_numpy(float))
    yr = pd.to_numeric(frame[year].str.strip(), errors="coerce")
    val = pd.to_numeric(frame[value].str.strip(), errors="coerce")
    flag = _flag(frame[urban])
    w = pd.to_numeric(frame[weight], errors="coerce") if weight else pd.Series(1.0, frame.index)
    left, bottom, right, top = bounds_3857
    inside = (x >= left) & (x < right) & (y > bottom) & (y <= top)
    checks = [
        (lo.isna() | la.isna(), lambda i: "has no coordinates"),
        (~inside, lambda i: f"point ({lo[i]}, {la[i]}) is outside the country"),
        (yr.isna() | (yr % 1 != 0), lambda i: f"year {frame[year][i]!r} is missing or not a year"),
        (~yr.isin(list(years)), lambda i: f"year {frame[year][i]} is not a configured year"),
        (~np.isfinite(val.to_numpy(float)), lambda i: f"value {frame[value][i]!r} is not a number"),
        (flag.isna(), lambda i: f"urban flag {frame[urban][i]!r} is not urban/rural (true/false)"),
        (~(w >= 0), lambda i: f"weight {frame[weight][i]!r} is not a non-negative number"),
    ]
    for bad, problem in checks:
        hit = np.flatnonzero(np.asarray(bad, bool))
        if len(hit):
            i = frame.index[int(hit[0])]
            raise SurveyFileError(f"{path}:{first_row + int(hit[0])}: {problem(i)}")
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "lat": la.to_numpy(float),
            "value": val.to_numpy(float),
            "year": yr.to_numpy(np.int64),
            "urban": flag.to_numpy(bool),
            "weight": w.to_numpy(float),
            "row": np.arange(first_row, first_row + len(frame)),
        }
    )


def _tile_xy(x: np.ndarray, y: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    size = 2 * ORIGIN / (1 << zoom)
    return np.floor((x + ORIGIN) / size).astype(np.int64), np.floor((ORIGIN - y) / size).astype(
        np.int64
    )


def _polar_grid(rings: int, rays: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-radius offsets of an equal-weight quadrature of 'uniform angle, uniform distance'."""
    r = (np.arange(rings) + 0.5) / rings
    t = (np.arange(rays) + 0.5) / rays * 2 * np.pi
    rr, tt = np.meshgrid(r, t, indexing="ij")
    return (rr * np.cos(tt)).ravel(), (rr * np.sin(tt)).ravel()


def tile_values(
    points: pd.DataFrame,
    zoom: int,
    displacement: Displacement | None = None,
    *,
    rings: int = 24,
    rays: int = 48,
    min_mass: float = 0.0,
    prior: pd.Series | None = None,
) -> pd.DataFrame:
    """Per tile: x, y, ``value`` (mass-weighted mean of the clusters' values), ``mass``
    (expected clusters in the tile, times their weights) and ``n_points`` (clusters that may be
    in it).  ``displacement`` None: each point counts in the tile it is published in.

    ``prior`` (indexed by tile x, y; e.g. the grid's ``inhabited`` flag): where clusters can be;
    a cluster's mass is multiplied by it and renormalised (Bayes: surveys sample inhabited
    places), unless none of its possible tiles has any prior, when it stays as it was."""
    if points.empty:
        return pd.DataFrame(columns=["x", "y", "value", "mass", "n_points"])
    parts = []
    ux, uy = _polar_grid(rings, rays)
    for i, p in enumerate(points.itertuples(index=False)):
        comps = [(1.0, 0.0)] if displacement is None else displacement.components(bool(p.urban))
        for prob, radius_km in comps:
            if prob <= 0:
                continue
            scale = radius_km * 1000.0 / np.cos(np.radians(p.lat))  # Mercator m per ground m
            if scale == 0:
                tx, ty = _tile_xy(np.array([p.x]), np.array([p.y]), zoom)
                w = np.array([prob])
            else:
                tx, ty = _tile_xy(p.x + scale * ux, p.y + scale * uy, zoom)
                w = np.full(len(tx), prob / len(tx))
            parts.append(pd.DataFrame({"i": i, "tx": tx, "ty": ty, "m": w * p.weight}))
    cells = pd.concat(parts, ignore_index=True).groupby(["i", "tx", "ty"], sort=False)["m"].sum()
    cells = cells.reset_index()
    if prior is not None:
        pri = prior.astype(float).reindex(pd.MultiIndex.from_arrays([cells["tx"], cells["ty"]]))
        m = cells["m"].to_numpy() * np.nan_to_num(pri.to_numpy(), nan=0.0)
        total = pd.Series(cells["m"].to_numpy()).groupby(cells["i"].to_numpy()).transform("sum")
        kept = pd.Series(m).groupby(cells["i"].to_numpy()).transform("sum")
        ok = (kept > 0).to_numpy()
        cells.loc[ok, "m"] = m[ok] * (total[ok] / kept[ok]).to_numpy()
    cells["mv"] = cells["m"] * points["value"].to_numpy()[cells["i"].to_numpy()]
    g = cells.groupby(["tx", "ty"], sort=True)
    out = pd.DataFrame({"mass": g["m"].sum(), "mv": g["mv"].sum(), "n_points": g["i"].nunique()})
    out = out[(out["mass"] > 0) & (out["mass"] >= min_mass)]
    out["value"] = out["mv"] / out["mass"]
    out = out.drop(columns="mv").reset_index().rename(columns={"tx": "x", "ty": "y"})
    return out[["x", "y", "value", "mass", "n_points"]]


def grid_bounds(grid: pd.DataFrame) -> tuple[float, float, float, float]:
    """The country's extent in EPSG:3857: the block of its grid tiles (survey points outside it
    are outside the country)."""
    z = int(grid["z"].iloc[0])
    x0, y0 = int(grid["x"].min()), int(grid["y"].min())
    nx, ny = int(grid["x"].max()) - x0 + 1, int(grid["y"].max()) - y0 + 1
    return block_bounds_3857(z, x0, y0, nx, ny)


def survey_tiles(
    points: pd.DataFrame,
    grids: dict[int, pd.DataFrame],
    displacement: Displacement | None,
    *,
    min_mass: float = 0.3,
    inhabited_prior: bool = True,
) -> pd.DataFrame:
    """The `survey_tiles` rows: per survey year (one of ``grids``: that year's scored tiles with
    x, y, z, inhabited) and tile, the survey's value, mass and clusters; with
    ``inhabited_prior`` the clusters are placed only in the year's inhabited tiles."""
    out = []
    for year, pts in points.groupby("year", sort=True):
        grid = grids[int(year)]
        zoom = int(grid["z"].iloc[0])
        prior = grid.set_index(["x", "y"])["inhabited"] if inhabited_prior else None
        vals = tile_values(pts, zoom, displacement, min_mass=min_mass, prior=prior)
        vals.insert(0, "year", int(year))
        vals.insert(
            1,
            "tile_id",
            [tile_id(zoom, int(x), int(y)) for x, y in zip(vals["x"], vals["y"], strict=True)],
        )
        vals.insert(2, "z", zoom)
        out.append(vals)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()
