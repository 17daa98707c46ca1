"""The ``source: {kind: stac, ...}`` block of the countries file, as the STAC ingest reads it, and
the AOI it names.

The block's settings and rules are the countries file's ``StacSource`` model
(``core/countries_stac.py``), checked when the file loads; here a block read on its own gets the
``where`` a reader of the imagery names in its ``ValueError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely
from pydantic import TypeAdapter, ValidationError
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.countries import BBox, SettingError, StacSource, explain

__all__ = ["StacBlockError", "StacSource", "load_aoi", "parse_stac_block", "parse_stac_source"]


class StacBlockError(SettingError):
    """A stac block read on its own: ``keys`` is the wrong value's path in the country's entry
    (``("source", "api")``, or ``("bbox",)`` for the country's own bbox)."""


def parse_stac_block(raw: dict[str, Any], bbox: Any = None) -> StacSource:
    """A ``kind: stac`` source block read on its own (``bbox``: the country's, used when the
    block has none), or a :class:`StacBlockError` naming the first wrong value."""
    try:
        box = TypeAdapter(BBox).validate_python(bbox)
        return StacSource.model_validate(dict(raw) if box is None else {"bbox": box, **raw})
    except ValidationError as exc:
        where = ("source",) if exc.title == "StacSource" else ("bbox",)  # the country's
        keys, problem = explain(exc, lambda loc: (*where, *loc))
        raise StacBlockError(problem, keys) from None


def parse_stac_source(
    raw: StacSource | dict[str, Any], where: str, bbox: tuple[float, ...] | None = None
) -> StacSource:
    """A ``kind: stac`` source block, checked (``where`` names the file and country in errors);
    a country's ``source`` was checked when the file loaded (its bbox defaults to the country's)."""
    if isinstance(raw, StacSource):
        return raw
    try:
        return parse_stac_block(raw, bbox)
    except StacBlockError as exc:
        raise ValueError(f"{where}: {exc.problem}") from None


def load_aoi(cfg: StacSource, base: Path | None = None) -> BaseGeometry:
    """The AOI as a lon/lat geometry: the polygon file's union, else the bbox.

    A file that is missing, not JSON, holds no polygon or an invalid one (self-intersecting, a
    hole outside its shell) is a ``ValueError`` naming the file (and the feature)."""
    if cfg.aoi is None:
        assert cfg.bbox is not None
        return box(*cfg.bbox)
    path = Path(cfg.aoi)
    if not path.is_absolute() and base is not None and not path.exists():
        path = base / path
    if not path.is_file():
        raise ValueError(f"AOI file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: AOI file is not GeoJSON ({exc})") from exc
    try:
        feats = data["features"] if data.get("type") == "FeatureCollection" else [data]
        geoms = [shape(f["geometry"] if f.get("type") == "Feature" else f) for f in feats]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: AOI file holds no readable GeoJSON geometry ({exc})") from exc
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    for i, g in enumerate(geoms):  # a bow-tie or a stray hole: GEOS fails the union without a word
        if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty and not g.is_valid:
            raise ValueError(f"{path}: feature {i}: invalid polygon ({shapely.is_valid_reason(g)})")
    if not polys:
        found = ", ".join(g.geom_type for g in geoms) or "nothing"
        raise ValueError(f"{path}: AOI file holds no polygon (found {found})")
    from shapely.ops import unary_union

    aoi = unary_union(polys)
    w, s, e, n = aoi.bounds
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ValueError(
            f"{path}: AOI is not in lon/lat degrees (bounds {aoi.bounds}); GeoJSON is EPSG:4326"
        )
    return aoi
