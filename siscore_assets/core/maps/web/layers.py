"""The map's data layers: colour scales (sequential for siScore, diverging for change), the
per-tile records a click shows (chunked by zoom-10 parent, so a click fetches one small file),
and the districts as GeoJSON outlines carrying their yearly aggregates."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

#: Zoom of the chunks a click reads: 16 x 16 zoom-14 tiles per file.
CELL_ZOOM = 10
#: Douglas-Peucker tolerance of district outlines, metres (EPSG:3857): far below a tile's 2.4 km.
SIMPLIFY_M = 100.0


@dataclass(frozen=True)
class Scale:
    """A colour scale: matplotlib colormap over [vmin, vmax]; ``kind`` 'sequential' or
    'diverging'.  The legend is drawn from :meth:`stops`, so map and legend agree."""

    name: str
    cmap: str
    vmin: float
    vmax: float
    kind: str
    label: str

    def rgba(self, values: np.ndarray, alpha: int = 255) -> np.ndarray:
        from matplotlib import colormaps

        v = np.asarray(values, dtype=float)
        t = np.clip((v - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0)
        out = colormaps[self.cmap](np.nan_to_num(t), bytes=True)
        out[..., 3] = np.where(np.isfinite(v), alpha, 0)
        return out.astype(np.uint8)

    def stops(self, n: int = 11) -> list[list]:
        """[value, '#rrggbb'] at ``n`` evenly spaced values."""
        values = np.linspace(self.vmin, self.vmax, n)
        rgba = self.rgba(values)
        return [
            [round(float(v), 4), "#{:02x}{:02x}{:02x}".format(*c[:3])] for v, c in zip(values, rgba)
        ]

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "vmin": self.vmin,
            "vmax": self.vmax,
            "stops": self.stops(),
        }


SCORE_SCALE = Scale("siscore", "viridis", 0.0, 1.0, "sequential", "siScore (0 least, 1 most)")


def change_scale(deltas: list[np.ndarray]) -> Scale:
    """A symmetric diverging scale for score changes: ±(98th percentile of |change| over every
    pair, rounded up to 0.05), so one outlier does not wash the map out."""
    finite = [np.abs(d[np.isfinite(d)]) for d in deltas]
    values = np.concatenate(finite) if finite else np.zeros(0)
    top = float(np.percentile(values, 98)) if values.size else 0.1
    r = round(max(0.05, math.ceil(top / 0.05) * 0.05), 2)  # 0.15, not 0.15000000000000002
    return Scale("change", "RdBu", -r, r, "diverging", "siScore change (to − from)")


def _num(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def write_cells(per_year: dict[int, pd.DataFrame], root: Path) -> int:
    """One JSON per zoom-10 parent: ``{"x_y": {"s": [score per year], "st": [status per year],
    "img": [has an image per year]}}`` in the order of ``per_year``'s years.  Returns files."""
    years = list(per_year)
    frames = []
    for i, year in enumerate(years):
        t = per_year[year][["x", "y", "score", "status", "image_row"]].copy()
        t["i"] = i
        frames.append(t)
    if not frames:
        return 0
    allrows = pd.concat(frames, ignore_index=True)
    shift = 14 - CELL_ZOOM
    allrows["cx"] = allrows["x"].to_numpy(np.int64) >> shift
    allrows["cy"] = allrows["y"].to_numpy(np.int64) >> shift
    n = 0
    for (cx, cy), chunk in allrows.groupby(["cx", "cy"], sort=True):
        cells: dict[str, dict] = {}
        for row in chunk.itertuples(index=False):
            rec = cells.setdefault(
                f"{row.x}_{row.y}",
                {
                    "s": [None] * len(years),
                    "st": ["no imagery"] * len(years),
                    "img": [0] * len(years),
                },
            )
            rec["s"][row.i] = _num(row.score)
            rec["st"][row.i] = row.status
            rec["img"][row.i] = int(row.image_row >= 0)
        path = root / str(cx) / f"{cy}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cells, separators=(",", ":")))
        n += 1
    return n


def districts_geojson(districts: pd.DataFrame, scores: pd.DataFrame, years: list[int]) -> dict:
    """Outlines (EPSG:4326, simplified) with ``mean_<year>``, ``area_mean_<year>`` and
    ``tiles_<year>`` properties from `district_siscore`."""
    import geopandas as gpd

    geom = gpd.GeoSeries.from_wkb(districts["geometry_wkb"].map(bytes), crs="EPSG:3857")
    geom = geom.simplify(SIMPLIFY_M).to_crs("EPSG:4326")
    geom = gpd.GeoSeries(shapely.set_precision(geom.values, 1e-5), crs="EPSG:4326")  # ~1 m
    props = districts.drop(columns=["geometry_wkb"]).copy()
    for year in years:
        s = scores[scores["year"] == year].set_index("district_id") if len(scores) else None
        for col, name in (("score_mean", "mean"), ("score_area_mean", "area_mean")):
            # no `district_siscore` rows (a partial run): every district's value is empty
            vals = (
                props["district_id"].map(s[col])
                if s is not None
                else pd.Series(np.nan, index=props.index)
            )
            props[f"{name}_{year}"] = [_num(v) for v in pd.Series(vals, dtype=float)]
        tiles = (
            props["district_id"].map(s["n_tiles"])
            if s is not None
            else pd.Series(0, index=props.index)
        )
        props[f"tiles_{year}"] = pd.Series(tiles).fillna(0).astype(int).tolist()
    feats = gpd.GeoDataFrame(props, geometry=geom.values, crs="EPSG:4326")
    data = json.loads(feats.to_json(drop_id=True))
    for f in data["features"]:
        f["id"] = int(f["properties"]["district_id"])
    return data
