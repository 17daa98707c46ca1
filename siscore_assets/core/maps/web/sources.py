"""What the map reads from the warehouse: a country's years, each year's tiles (score, status,
where its image is) and its districts.  Every read tolerates a table that is not there (a
country without districts, a warehouse with one year), so the site says what is missing
instead of failing.  Reads are narrow (numbers, not strings, per tile) and per year."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from siscore_assets.core.storage import warehouse as wh

#: Status a tile shows in the popup when it has a score but the filter judged it empty.
UNINHABITED = "uninhabited"
#: Status of a tile the year's imagery does not cover at all.
NO_IMAGERY = "no imagery"

#: The zoom of the grid the map draws (its pyramids, cells and click records are built on it).
MAP_ZOOM = 14


class UnsupportedGrid(ValueError):
    """A country whose tiles are not on the grid the map draws."""


def maybe_query(database: str | os.PathLike[str], sql: str, params: list | None = None):
    """``sql`` over the warehouse, or an empty frame when a table it names does not exist."""
    try:
        return wh.query(database, sql, params or [])
    except (duckdb.CatalogException, duckdb.BinderException, FileNotFoundError):
        return pd.DataFrame()


@dataclass
class CountryData:
    """The warehouse's view of one country, as the map and the country page need it."""

    country: str
    database: str
    years: list[int]
    notes: list[str] = field(default_factory=list)

    def year_tiles(self, year: int) -> pd.DataFrame:
        """One row per tile the year knows (patches and/or siscore_grid): x, y, score (NaN
        where not scored), inhabited, status, image_row (-1 without an image), stack_path."""
        patches = maybe_query(
            self.database,
            "SELECT x, y, status, coalesce(image_row, -1) AS image_row, stack_path FROM patches "
            f"WHERE country = ? AND year = ? AND z = {MAP_ZOOM}",
            [self.country, year],
        )
        grid = maybe_query(
            self.database,
            "SELECT x, y, score, inhabited FROM siscore_grid WHERE country = ? AND year = ? "
            f"AND z = {MAP_ZOOM}",
            [self.country, year],
        )
        if patches.empty:
            patches = pd.DataFrame(
                {"x": [], "y": [], "status": [], "image_row": [], "stack_path": []}
            )
        if grid.empty:
            grid = pd.DataFrame({"x": [], "y": [], "score": [], "inhabited": []})
        out = patches.merge(grid, on=["x", "y"], how="outer")
        out["x"] = out["x"].astype(np.int64)
        out["y"] = out["y"].astype(np.int64)
        out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(float)
        out["inhabited"] = out["inhabited"].astype("boolean").fillna(False).astype(bool)
        out["image_row"] = pd.to_numeric(out["image_row"], errors="coerce").fillna(-1)
        out["image_row"] = out["image_row"].astype(np.int64)
        status = out["status"].astype(object).where(out["status"].notna(), NO_IMAGERY)
        ok = status.eq("ok")
        status = status.where(~(ok & out["score"].notna() & ~out["inhabited"]), UNINHABITED)
        out["status"] = status.astype(str)
        return out.sort_values(["y", "x"]).reset_index(drop=True)

    def districts(self) -> pd.DataFrame:
        """The `districts` rows (geometry as WKB, EPSG:3857; the name as ``name`` whatever the
        layer called it); empty when none are configured."""
        return district_rows(self.database, self.country)

    def district_scores(self) -> pd.DataFrame:
        """`district_siscore`: mean and area-weighted siScore per district and year."""
        return maybe_query(
            self.database,
            "SELECT year, district_id, n_tiles, score_mean, score_area_mean FROM district_siscore "
            "WHERE country = ? ORDER BY year, district_id",
            [self.country],
        )


def district_rows(database: str | os.PathLike[str], country: str) -> pd.DataFrame:
    """`districts` of a country, its name column called ``name`` (layers say ``district_name``)."""
    frame = maybe_query(
        database,
        "SELECT * EXCLUDE (country) FROM districts WHERE country = ? ORDER BY district_id",
        [country],
    )
    if "name" not in frame.columns and "district_name" in frame.columns:
        frame = frame.rename(columns={"district_name": "name"})
    return frame


def check_zoom(database: str | os.PathLike[str], country: str) -> None:
    """Refuse a country gridded at another zoom: its tiles would all be left out and the map
    would open on the whole world with nothing drawn."""
    zooms = maybe_query(
        database,
        "SELECT DISTINCT z FROM patches WHERE country = ? UNION "
        "SELECT DISTINCT z FROM siscore_grid WHERE country = ?",
        [country, country],
    )
    other = sorted(int(z) for z in zooms["z"] if int(z) != MAP_ZOOM) if len(zooms) else []
    if other:
        raise UnsupportedGrid(
            f"{country}'s tiles are at zoom {', '.join(map(str, other))}: the map draws zoom "
            f"{MAP_ZOOM} tiles only (set `zoom: {MAP_ZOOM}` in the country's entry, or use the "
            "COGs and the STAC catalog, which follow the country's zoom)"
        )


def country_data(database: str | os.PathLike[str], country: str) -> CountryData:
    """The country's years (those with siScore rows, else those with patches) and notes on
    what the warehouse lacks; a country on another grid than the map's is refused."""
    check_zoom(database, country)
    years = maybe_query(
        database,
        "SELECT DISTINCT year FROM siscore_grid WHERE country = ? ORDER BY year",
        [country],
    )
    notes: list[str] = []
    if years.empty:
        years = maybe_query(
            database,
            "SELECT DISTINCT year FROM patches WHERE country = ? ORDER BY year",
            [country],
        )
        notes.append(f"no siScore for {country} in the warehouse: run `siscore run` first")
    ys = [int(y) for y in years["year"]] if not years.empty else []
    if len(ys) == 1:
        notes.append(f"one year only ({ys[0]}): no change layer")
    return CountryData(country=country, database=str(database), years=ys, notes=notes)
