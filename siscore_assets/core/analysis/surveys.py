"""Household-survey points (DHS and similar) as a tile proxy, with their displacement undone in
expectation.

Surveys publish cluster coordinates displaced on purpose: DHS moves an urban cluster up to 2 km,
a rural one up to 5 km, and 1 % of rural ones up to 10 km, in a uniformly drawn direction at a
uniformly drawn distance.  Seed 003 handles this by adding duplicated points at random inside
each buffer.  Here the tile values are the *exact expectation* over the displacement instead: the
true location of a published point is distributed like the displacement itself (uniform angle,
uniform distance up to the radius), which is uniform in polar coordinates, so an equal-weight
polar grid (``rings`` x ``rays`` midpoints) is a deterministic quadrature of it.  Each cluster
spreads its probability over the tiles its true location may be in; a tile's value is the mean of
the clusters' values weighted by that probability times the cluster's survey weight, and its
``mass`` is the expected number of clusters in it (the weights only average values).  The tiles
of one cluster share its value, so validation counts clusters, not tiles: each cluster's expected
score over the same probabilities (:func:`cluster_scores`).  Why not duplicated points: no
sampling noise and no seed, the same file gives the same tiles, and the error of the quadrature
is known and small (it converges as the grid is refined); duplicates approximate the same
expectation with Monte-Carlo error.

Distances are ground kilometres, turned into Web-Mercator metres by 1 / cos(latitude).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.grid import block_bounds_3857, tile_id

EARTH_RADIUS_M = 6378137.0
ORIGIN = np.pi * EARTH_RADIUS_M  # half the Web-Mercator world width, metres
_TRUE = {"true", "1", "yes", "t", "y", "urban", "u"}
_FALSE = {"false", "0", "no", "f", "n", "rural", "r"}
#: A cluster is validated on its expected score only where the tiles with a score hold at
#: least this share of where it may be (cloudy tiles and the grid's edge take the rest).
MIN_SCORED_SHARE = 0.5
#: The columns of :func:`cluster_cells` (also when there are no points).
CELL_DTYPES = {"i": "int64", "tx": "int64", "ty": "int64", "p": "float64"}


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


def read_csv_lines(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV's records as strings (header stripped, blank lines skipped, a short record padded
    with empty fields) and the file line each record starts on: counting records would misplace
    an error after a blank line or a quoted field that spans lines."""
    records, lines, start = [], [], 1
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header = [c.strip() for c in next(reader, [])]
            if not header:
                raise SurveyFileError(f"{path}:1: empty file (expected a header line)")
            start = reader.line_num + 1
            for rec in reader:
                if any(field.strip() for field in rec):
                    if len(rec) > len(header):
                        raise SurveyFileError(
                            f"{path}:{start}: {len(rec)} fields, the header has {len(header)}"
                        )
                    records.append(rec + [""] * (len(header) - len(rec)))
                    lines.append(start)
                start = reader.line_num + 1
    except UnicodeDecodeError:
        raise SurveyFileError(f"{path}:{_bad_utf8_line(path)}: not UTF-8 text") from None
    except csv.Error as exc:
        raise SurveyFileError(f"{path}:{start}: not readable as CSV ({exc})") from None
    return pd.DataFrame(records, columns=header, dtype=str), np.asarray(lines, np.int64)


def _bad_utf8_line(path: Path) -> int:
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


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
        frame, lines = read_csv_lines(path)
        need = [lon, lat]
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
        need, lines = [], np.arange(1, len(frame) + 1)  # feature 1 is the first row
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
            raise SurveyFileError(f"{path}:{lines[int(hit[0])]}: {problem(i)}")
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "lat": la.to_numpy(float),
            "value": val.to_numpy(float),
            "year": yr.to_numpy(np.int64),
            "urban": flag.to_numpy(bool),
            "weight": w.to_numpy(float),
            "row": np.asarray(lines, np.int64),
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


def cluster_cells(
    points: pd.DataFrame,
    zoom: int,
    displacement: Displacement | None = None,
    *,
    rings: int = 24,
    rays: int = 48,
    prior: pd.Series | None = None,
) -> pd.DataFrame:
    """Per cluster (``i``: its position in ``points``) and tile (``tx``, ``ty``): ``p``, the
    probability that the cluster truly lies in the tile (it sums to 1 over a cluster's tiles).
    ``displacement`` None: each point is in the tile it is published in.

    ``prior`` (indexed by tile x, y; e.g. the grid's ``inhabited`` flag): where clusters can be;
    a cluster's probability is multiplied by it and renormalised (Bayes: surveys sample inhabited
    places), unless none of its possible tiles has any prior, when it stays as it was."""
    if points.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CELL_DTYPES.items()})
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
            parts.append(pd.DataFrame({"i": i, "tx": tx, "ty": ty, "p": w}))
    cells = pd.concat(parts, ignore_index=True).groupby(["i", "tx", "ty"], sort=False)["p"].sum()
    cells = cells.reset_index()
    if prior is not None:
        pri = prior.astype(float).reindex(pd.MultiIndex.from_arrays([cells["tx"], cells["ty"]]))
        m = cells["p"].to_numpy() * np.nan_to_num(pri.to_numpy(), nan=0.0)
        total = pd.Series(cells["p"].to_numpy()).groupby(cells["i"].to_numpy()).transform("sum")
        kept = pd.Series(m).groupby(cells["i"].to_numpy()).transform("sum")
        ok = (kept > 0).to_numpy()
        cells.loc[ok, "p"] = m[ok] * (total[ok] / kept[ok]).to_numpy()
    return cells


def tile_values(
    points: pd.DataFrame,
    zoom: int,
    displacement: Displacement | None = None,
    *,
    rings: int = 24,
    rays: int = 48,
    min_mass: float = 0.0,
    prior: pd.Series | None = None,
    cells: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per tile: x, y, ``value`` (the clusters' values averaged with their probability in the
    tile times their weight), ``mass`` (expected clusters in the tile: the weights do not count,
    so ``min_mass`` means the same whatever unit they are in) and ``n_points`` (clusters that may
    be in it); tiles with under ``min_mass`` expected clusters, or no weight, are left out.
    ``cells``: :func:`cluster_cells` of ``points`` when already made (else made here with
    ``displacement``, ``rings``, ``rays`` and ``prior``)."""
    if points.empty:
        return pd.DataFrame(columns=["x", "y", "value", "mass", "n_points"])
    if cells is None:
        cells = cluster_cells(points, zoom, displacement, rings=rings, rays=rays, prior=prior)
    cells = cells.copy()
    at = cells["i"].to_numpy()
    cells["m"] = cells["p"] * points["weight"].to_numpy(float)[at]
    cells["mv"] = cells["m"] * points["value"].to_numpy()[at]
    g = cells.groupby(["tx", "ty"], sort=True)
    out = pd.DataFrame(
        {"mass": g["p"].sum(), "m": g["m"].sum(), "mv": g["mv"].sum(), "n_points": g["i"].nunique()}
    )
    out = out[(out["m"] > 0) & (out["mass"] >= min_mass)]
    out["value"] = out["mv"] / out["m"]
    out = out.drop(columns=["m", "mv"]).reset_index().rename(columns={"tx": "x", "ty": "y"})
    return out[["x", "y", "value", "mass", "n_points"]]


def grid_bounds(grid: pd.DataFrame) -> tuple[float, float, float, float]:
    """The country's extent in EPSG:3857: the block of its grid tiles (survey points outside it
    are outside the country)."""
    z = int(grid["z"].iloc[0])
    x0, y0 = int(grid["x"].min()), int(grid["y"].min())
    nx, ny = int(grid["x"].max()) - x0 + 1, int(grid["y"].max()) - y0 + 1
    return block_bounds_3857(z, x0, y0, nx, ny)


def survey_tables(
    points: pd.DataFrame,
    grids: dict[int, pd.DataFrame],
    displacement: Displacement | None,
    *,
    min_mass: float = 0.3,
    inhabited_prior: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`survey_tiles` rows, `survey_clusters` rows), per survey year (one of ``grids``: that
    year's scored tiles with x, y, z, inhabited).  Tiles: the survey's value, mass and clusters
    per tile.  Clusters: per cluster (``cluster``: its ``row``, the line in the file) and tile
    it may be in, ``p`` (:func:`cluster_cells`), its ``value`` and ``urban`` flag: the unit
    validation counts, since one cluster spread over many tiles is one observation.  With
    ``inhabited_prior`` the clusters are placed only in the year's inhabited tiles."""
    tiles, clusters = [], []
    if "row" not in points:  # not read from a file: clusters are numbered in order
        points = points.assign(row=np.arange(1, len(points) + 1))
    for year, pts in points.groupby("year", sort=True):
        grid = grids[int(year)]
        zoom = int(grid["z"].iloc[0])
        prior = grid.set_index(["x", "y"])["inhabited"] if inhabited_prior else None
        pts = pts.reset_index(drop=True)
        cells = cluster_cells(pts, zoom, displacement, prior=prior)
        vals = tile_values(pts, zoom, min_mass=min_mass, cells=cells)
        at = cells["i"].to_numpy()
        per = pd.DataFrame(
            {"cluster": pts["row"].to_numpy()[at], "x": cells["tx"], "y": cells["ty"],
             "p": cells["p"], "value": pts["value"].to_numpy()[at],
             "urban": pts["urban"].to_numpy(bool)[at]}
        )  # fmt: skip
        for frame, out in ((vals, tiles), (per, clusters)):
            frame.insert(0, "year", int(year))
            ids = zip(frame["x"], frame["y"], strict=True)
            frame.insert(1, "tile_id", [tile_id(zoom, int(x), int(y)) for x, y in ids])
            frame.insert(2, "z", zoom)
            out.append(frame)
    tile_rows = pd.concat(tiles, ignore_index=True) if tiles else pd.DataFrame()
    return tile_rows, pd.concat(clusters, ignore_index=True) if clusters else pd.DataFrame()


def survey_tiles(
    points: pd.DataFrame,
    grids: dict[int, pd.DataFrame],
    displacement: Displacement | None,
    *,
    min_mass: float = 0.3,
    inhabited_prior: bool = True,
) -> pd.DataFrame:
    """The `survey_tiles` rows of :func:`survey_tables`."""
    return survey_tables(
        points, grids, displacement, min_mass=min_mass, inhabited_prior=inhabited_prior
    )[0]


def cluster_scores(
    clusters: pd.DataFrame,
    tiles: pd.DataFrame,
    score_cols: Sequence[str],
    *,
    keep_col: str | None = None,
    min_share: float = MIN_SCORED_SHARE,
) -> pd.DataFrame:
    """One row per cluster of ``clusters`` (`survey_clusters` rows of one year): ``cluster``,
    ``value``, ``urban`` and, per score column of ``tiles`` (tile_id, the score columns and
    ``keep_col``), the cluster's expected score over where it may be (its tiles' scores weighted
    by ``p``, renormalised over the tiles with a score, and with ``keep_col`` True): the
    quantity a tile's survey value stands for, taken per cluster.  NaN where those tiles hold
    under ``min_share`` of the cluster's probability (its expectation would cover a corner)."""
    out = clusters.groupby("cluster", sort=True).agg(
        value=("value", "first"), urban=("urban", "first"), total=("p", "sum")
    )
    look = tiles.drop_duplicates("tile_id").set_index("tile_id")
    keep = (
        look[keep_col].astype("boolean").fillna(False).reindex(clusters["tile_id"]).fillna(False)
        if keep_col
        else pd.Series(True, index=clusters["tile_id"])
    ).to_numpy(bool)
    p = clusters["p"].to_numpy(float)
    for col in score_cols:
        s = pd.to_numeric(look[col], errors="coerce").reindex(clusters["tile_id"]).to_numpy(float)
        ok = keep & np.isfinite(s)
        pk = np.where(ok, p, 0.0)
        g = pd.DataFrame(
            {"c": clusters["cluster"].to_numpy(), "pk": pk, "ps": pk * np.nan_to_num(s)}
        )
        sums = g.groupby("c", sort=True)[["pk", "ps"]].sum().reindex(out.index)
        with np.errstate(invalid="ignore", divide="ignore"):
            e = sums["ps"] / sums["pk"]
        out[col] = e.where(sums["pk"] >= min_share * out["total"])
    return out.drop(columns="total").reset_index()
