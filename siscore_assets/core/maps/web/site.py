"""The static site of one country: ``index.html`` (the map), ``country.html`` (the country page)
and their tiles and data, written to a temporary folder and renamed into place, so a reader
never sees half a site.  Any web host can serve the folder; nothing is fetched from elsewhere
(the map library is vendored in the package with its licence)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siscore_assets.core.analysis import change
from siscore_assets.core.imagery.grid import Tile

from . import layers, pyramid
from .sources import CountryData, country_data

PACKAGE = Path(__file__).resolve().parents[3]
VENDOR = PACKAGE / "web" / "vendor" / "maplibre-gl"
TEMPLATES = Path(__file__).resolve().parent / "templates"
VENDOR_FILES = ("maplibre-gl.js", "maplibre-gl.css", "LICENSE.txt", "VERSION")
#: Alpha of a change within the pair's noise (not ``significant``, core/analysis/change.py).
NOT_SIGNIFICANT_ALPHA = 0.35


@dataclass
class SiteReport:
    """What a build wrote: where, how big, how long, and what the warehouse lacked."""

    out: Path
    years: list[int]
    bytes: int = 0
    files: int = 0
    seconds: float = 0.0
    tiles: int = 0
    notes: list[str] = field(default_factory=list)
    layers: dict[str, dict] = field(default_factory=dict)
    #: The warehouse's years not configured any more, not shown.
    left_out: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "site": str(self.out),
            "years": self.years,
            "tiles": self.tiles,
            "site_mb": round(self.bytes / 1e6, 2),
            "files": self.files,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
        }


def _pairs(years: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for i, a in enumerate(years) for b in years[i + 1 :]]


def _bounds_lonlat(xs: np.ndarray, ys: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = pyramid.bounds_of(xs, ys)
    west, _, _, north = Tile(14, x0, y0).bounds_lonlat()
    _, south, east, _ = Tile(14, x1, y1).bounds_lonlat()
    return [west, south, east, north]


def _value_layers(data: CountryData, per_year: dict, root: Path, report: SiteReport) -> dict:
    """siScore per year and change per pair of years, as coloured tile pyramids."""
    config: dict = {"score": {}, "change": {}}
    for year, t in per_year.items():
        shown = t["score"].where(t["inhabited"])
        blocks = pyramid.value_blocks(t["x"].to_numpy(), t["y"].to_numpy(), shown.to_numpy())
        stats = pyramid.write_values(blocks, root / "score" / str(year), layers.SCORE_SCALE.rgba)
        report.layers[f"score_{year}"] = stats
        config["score"][str(year)] = f"layers/score/{year}/{{z}}/{{x}}/{{y}}.png"
    deltas = {}
    for a, b in _pairs(data.years):
        ta, tb = per_year[a], per_year[b]
        both = ta[["x", "y", "score", "inhabited"]].merge(
            tb[["x", "y", "score", "inhabited"]], on=["x", "y"], suffixes=("_a", "_b")
        )
        keep = both["inhabited_a"] | both["inhabited_b"]
        both = both[keep & both["score_a"].notna() & both["score_b"].notna()]
        deltas[(a, b)] = both
    scale = layers.change_scale([(d["score_b"] - d["score_a"]).to_numpy() for d in deltas.values()])
    for (a, b), d in deltas.items():
        delta = (d["score_b"] - d["score_a"]).to_numpy()
        xs, ys = d["x"].to_numpy(), d["y"].to_numpy()
        blocks = pyramid.value_blocks(xs, ys, delta)
        flags = change.flag_changes(delta, (d["inhabited_a"] | d["inhabited_b"]).to_numpy())
        weight = np.where(flags["significant"].to_numpy(), 1.0, NOT_SIGNIFICANT_ALPHA)
        opacity = pyramid.value_blocks(xs, ys, weight)
        stats = pyramid.write_values(
            blocks, root / "change" / f"{a}_{b}", scale.rgba, opacity=opacity
        )
        stats["significant"] = int(flags["significant"].sum())
        report.layers[f"change_{a}_{b}"] = stats
        config["change"][f"{a}_{b}"] = f"layers/change/{a}_{b}/{{z}}/{{x}}/{{y}}.png"
    config["scales"] = {"score": layers.SCORE_SCALE.as_json(), "change": scale.as_json()}
    return config


def _render(template: str, config: dict) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    blob = json.dumps(config, separators=(",", ":")).replace("</", "<\\/")
    return text.replace("/*SISCORE_CONFIG*/null", blob)


#: What the site and the country page read (core/maps/web/sources.py, core/maps/country_page.py),
#: each year's and the country's own: `web_map`'s declared inputs, and what `is_current` checks.
SITE_YEARLY_INPUTS = (
    "siscore_raster", "siscore_change", "district_siscore", "validation_grid",
    "validation_district", "siscore_grid", "patches",
)  # fmt: skip
SITE_COUNTRY_INPUTS = ("development_regression", "validation_internal", "districts")
SITE_TABLES = SITE_YEARLY_INPUTS + SITE_COUNTRY_INPUTS


def warehouse_id(database: str | os.PathLike[str]) -> str:
    """Which warehouse a site was built from, as recorded in its ``site.json`` (a digest: the
    site may be served anywhere, the folder's path is nobody else's business)."""
    path = str(Path(database).expanduser().resolve())
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def kept_years(years: Iterable[int], configured: Iterable[int] | None) -> list[int]:
    """Of the warehouse's ``years``, those of ``configured`` (None: every one)."""
    if configured is None:
        return list(years)
    keep = {int(y) for y in configured}
    return [y for y in years if y in keep]


def site_years(
    database: str | os.PathLike[str], country: str, configured: Iterable[int] | None = None
) -> list[int]:
    """The years a site of ``country`` shows: the warehouse's, those of ``configured`` only."""
    return kept_years(country_data(database, country).years, configured)


def is_current(
    database: str | os.PathLike[str],
    country: str,
    out: Path,
    years: Iterable[int] | None = None,
) -> bool:
    """Whether the site at ``out`` is the one a rebuild would write: built from this warehouse
    for this country (and, given the configured ``years``, showing the years a build would),
    after every partition of the country's tables it reads was written (a 32,578-tile
    country's site takes minutes to build)."""
    from siscore_assets.core.storage.tables import partition_files, store_root, table_dir

    stamp = out / "site.json"
    if not stamp.is_file() or not (out / "index.html").is_file():
        return False
    try:
        built_from = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(built_from, dict) or built_from.get("country") != country:
        return False
    if built_from.get("warehouse") != warehouse_id(database):
        return False
    if years is not None and built_from.get("years") != site_years(database, country, years):
        return False
    built = stamp.stat().st_mtime
    root = store_root(database)
    for table in SITE_TABLES:
        for path in partition_files(table_dir(root, table)):
            if f"country={country}" in path.name and path.stat().st_mtime > built:
                return False
    return True


class NotASite(ValueError):
    """``out`` holds something other than a site this module built: never replaced."""


def check_replaceable(out: Path) -> None:
    """A build replaces ``out`` whole: allow that only for a folder that is missing, empty or
    holds a site built here (its ``site.json``), never a folder of the user's other files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise NotASite(f"{out} is a file, not a folder: choose a folder for the site")
    if any(out.iterdir()) and not (out / "site.json").is_file():
        raise NotASite(
            f"{out} is not empty and holds no siScore site (no site.json): the build replaces "
            "its folder whole, so choose an empty or new folder"
        )


def build_site(
    database: str | os.PathLike[str],
    country: str,
    out: str | os.PathLike[str],
    *,
    reader: pyramid.ImageReader = pyramid.store_reader,
    imagery: bool = True,
    country_page: bool = True,
    years: Iterable[int] | None = None,
) -> SiteReport:
    """Write the country's site to ``out`` (replacing an earlier site there; a folder holding
    anything else is refused) and report on it; given ``years`` (the configured ones), the
    warehouse's other years are left out (``report.left_out``)."""
    from siscore_assets.core.maps import country_page as page

    t0 = time.perf_counter()
    out = Path(out)
    check_replaceable(out)
    data = country_data(database, country)
    left_out: list[int] = []
    if years is not None:
        kept = kept_years(data.years, years)  # the years just read, not a second query
        left_out = [y for y in data.years if y not in kept]
        if left_out and len(kept) == 1:
            data.notes.append(f"one year only ({kept[0]}): no change layer")
        data = dataclasses.replace(data, years=kept)
    report = SiteReport(out=out, years=list(data.years), notes=list(data.notes), left_out=left_out)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        per_year = {y: data.year_tiles(y) for y in data.years}
        config = _value_layers(data, per_year, tmp / "layers", report)
        config.update(country=country, years=data.years, imagery={})
        missing_imagery = []
        for year, t in per_year.items():
            has = t[t["image_row"] >= 0]
            if imagery and len(has):
                stats = pyramid.write_imagery(has, tmp / "imagery" / str(year), reader)
                report.layers[f"imagery_{year}"] = stats
                config["imagery"][str(year)] = {
                    "url": f"imagery/{year}/{{z}}/{{x}}/{{y}}.{pyramid.IMAGE_EXT}",
                    "px": stats["px"],
                }
            elif not len(has):
                missing_imagery.append(year)
        if missing_imagery:
            report.notes.append(
                "no imagery in the tile store for " + ", ".join(map(str, missing_imagery))
            )
        layers.write_cells(per_year, tmp / "cells")
        allxy = [(t["x"].to_numpy(), t["y"].to_numpy()) for t in per_year.values() if len(t)]
        report.tiles = int(max((len(t) for t in per_year.values()), default=0))
        if allxy:
            config["bounds"] = _bounds_lonlat(
                np.concatenate([a for a, _ in allxy]), np.concatenate([b for _, b in allxy])
            )
        districts = data.districts()
        if len(districts):
            geo = layers.districts_geojson(districts, data.district_scores(), data.years)
            (tmp / "districts.geojson").write_text(json.dumps(geo, separators=(",", ":")))
            config["districts"] = "districts.geojson"
        else:
            report.notes.append(f"no districts for {country}: no outlines or district aggregates")
        config["notes"] = report.notes
        vendor = tmp / "vendor" / "maplibre-gl"
        vendor.mkdir(parents=True)
        for name in VENDOR_FILES:
            shutil.copy2(VENDOR / name, vendor / name)
        for name in ("map.js", "map.css"):
            shutil.copy2(TEMPLATES / name, tmp / name)
        (tmp / "index.html").write_text(_render("index.html", config), encoding="utf-8")
        if country_page:
            page_html = page.render(database, country, None if years is None else data.years)
            (tmp / "country.html").write_text(page_html, encoding="utf-8")
        stamp = {**config, "warehouse": warehouse_id(database)}  # what `is_current` checks
        (tmp / "site.json").write_text(json.dumps(stamp, indent=1))
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.bytes, report.files = pyramid.folder_size(out)
    report.seconds = time.perf_counter() - t0
    return report
