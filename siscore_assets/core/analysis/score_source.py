"""Scores made elsewhere as a country's only source: a CSV of ``tile_id`` (``z/x/y`` or the NK
sample's ``y_x``), ``year``, ``score`` (optionally ``inhabited``), or one GeoTIFF per year.

Such an analysis-only country has no imagery: its grid and tile bounds come from the ids, and
the analysis (districts, covariates, validation, district indicators, change tables, the Table 1
regression) runs on the scores as if a scorer had written them.  A file is read in chunks (the
paper's North Korea is 32,578 tiles x 4 years, other countries 400,000 tiles): one pass checks
every row and keeps only int64 keys to find duplicates, so a bad file is one line naming the file
and the row before any row is written.  The rows of one year are what the grid table receives,
in the columns of ``siscore_grid``: ``raw_score`` = ``score``; ``inhabited`` from the file, else
``score > 0`` (the scorer's rule: uninhabited tiles score 0).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.countries import CountryConfig, CountryConfigError
from siscore_assets.core.imagery.grid import tile_id as make_tile_id

CHUNK_ROWS = 200_000
GRID_COLUMNS = ("tile_id", "z", "x", "y", "raw_score", "inhabited", "score")
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


class ScoreFileError(ValueError):
    """A score file that cannot be used: ``FILE:ROW: problem`` (row 1 is the header)."""


def _chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """(file row of the chunk's first data row, chunk as strings) for a CSV; columns checked."""
    try:
        reader = pd.read_csv(
            path, dtype=str, keep_default_na=False, chunksize=chunk_rows, skipinitialspace=True
        )
    except (OSError, pd.errors.EmptyDataError) as exc:
        raise ScoreFileError(f"{path}:1: cannot read a CSV header: {exc}") from None
    row = 2
    with reader:
        for chunk in reader:
            chunk.columns = [c.strip() for c in chunk.columns]
            missing = [c for c in ("tile_id", "year", "score") if c not in chunk.columns]
            if missing:
                raise ScoreFileError(
                    f"{path}:1: missing column(s) {', '.join(missing)} "
                    f"(header: {', '.join(chunk.columns)})"
                )
            yield row, chunk
            row += len(chunk)


def _parse(
    path: Path, first_row: int, chunk: pd.DataFrame, zoom: int, years: Collection[int]
) -> pd.DataFrame:
    """One chunk parsed and checked: z, x, y, year, score, inhabited; the first bad row raises."""
    # one pass over the ids for both forms: z/x/y (groups 0-2) or the NK sample's y_x (3-4)
    m = chunk["tile_id"].str.strip().str.extract(r"^(?:(\d{1,2})/(\d+)/(\d+)|(\d+)_(\d+))$")
    z = pd.to_numeric(m[0], errors="coerce").fillna(m[3].notna().map({True: zoom}))
    x = pd.to_numeric(m[1].fillna(m[4]), errors="coerce")
    y = pd.to_numeric(m[2].fillna(m[3]), errors="coerce")
    year = pd.to_numeric(chunk["year"].str.strip(), errors="coerce")
    score = pd.to_numeric(chunk["score"].str.strip(), errors="coerce")
    n = np.power(2.0, z)
    checks = [
        (z.isna() | x.isna(), "tile_id {v!r} is not a tile id ('z/x/y' or 'y_x')", "tile_id"),
        (z != zoom, f"tile_id {{v!r}} is not at the country's zoom {zoom}", "tile_id"),
        ((x < 0) | (x >= n) | (y < 0) | (y >= n), "tile_id {v!r} is off the grid", "tile_id"),
        (year.isna() | (year % 1 != 0), "year {v!r} is not an integer year", "year"),
        (~year.isin(list(years)), "year {v!r} is not a configured year", "year"),
        (~np.isfinite(score), "score {v!r} is not a finite number", "score"),
    ]
    inhabited = score > 0
    if "inhabited" in chunk.columns:
        flag = chunk["inhabited"].str.strip().str.lower()
        checks.append(
            (~flag.isin(_TRUE | _FALSE), "inhabited {v!r} is not true/false", "inhabited")
        )
        inhabited = flag.isin(_TRUE)
    for bad, problem, col in checks:
        hit = np.flatnonzero(bad.to_numpy())
        if len(hit):
            i = int(hit[0])
            where = f"{path}:{first_row + i}"
            raise ScoreFileError(f"{where}: {problem.format(v=chunk[col].iloc[i])}")
    return pd.DataFrame(
        {
            "z": z.astype(np.int64).to_numpy(),
            "x": x.astype(np.int64).to_numpy(),
            "y": y.astype(np.int64).to_numpy(),
            "year": year.astype(np.int64).to_numpy(),
            "score": score.astype(float).to_numpy(),
            "inhabited": inhabited.to_numpy(bool),
            "row": np.arange(first_row, first_row + len(chunk)),
        }
    )


def _keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per tile-year (x, y < 2^22 at zoom <= 22; years offset from 1900)."""
    return (frame["year"].to_numpy() - 1900) << 44 | frame["x"].to_numpy() << 22 | frame["y"]


def read_year(
    path: str | Path,
    year: int,
    *,
    zoom: int,
    years: Collection[int],
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """``year``'s rows of a score file in ``siscore_grid``'s columns, in file order; the whole
    file is checked first (ids on the grid at ``zoom``, configured years, finite scores, no
    duplicated tile-year), so a bad row anywhere fails every year alike."""
    frame = _checked(Path(path), zoom, years, chunk_rows, lambda p: p[p["year"] == year])
    return grid_rows(frame)


def read_tiles(
    path: str | Path, *, zoom: int, years: Collection[int], chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Every tile of a score file, any year (``tile_id``, ``z``, ``x``, ``y``, by tile id): the
    grid of an analysis-only country; the file is checked whole as by :func:`read_year`."""

    def tiles(parsed: pd.DataFrame) -> pd.DataFrame:
        return parsed[["z", "x", "y"]].drop_duplicates()

    frame = _checked(Path(path), zoom, years, chunk_rows, tiles).drop_duplicates()
    return _tile_frame(frame)


def _tile_frame(frame: pd.DataFrame) -> pd.DataFrame:
    ids = [make_tile_id(int(z), int(x), int(y)) for z, x, y in frame[["z", "x", "y"]].to_numpy()]
    out = pd.DataFrame({"tile_id": ids, **{c: frame[c].to_numpy(np.int64) for c in "zxy"}})
    return out.sort_values("tile_id", ignore_index=True)


def _checked(
    path: Path,
    zoom: int,
    years: Collection[int],
    chunk_rows: int,
    keep: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """One pass over a CSV score file: every row checked, duplicates found from int64 keys, and
    ``keep`` of each parsed chunk kept (the only rows held besides the keys)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        raise ScoreFileError(f"{path}: a GeoTIFF is read with read_raster_year")
    keys, rows, out = [], [], []
    for first, chunk in _chunks(path, chunk_rows):
        parsed = _parse(path, first, chunk, zoom, years)
        keys.append(_keys(parsed))
        rows.append(parsed["row"].to_numpy())
        out.append(keep(parsed))
    if not keys:
        raise ScoreFileError(f"{path}:2: no data rows")
    _no_duplicates(path, np.concatenate(keys), np.concatenate(rows))
    return pd.concat(out, ignore_index=True)


def _no_duplicates(path: Path, keys: np.ndarray, rows: np.ndarray) -> None:
    order = np.argsort(keys, kind="stable")
    dup = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if len(dup):
        later = rows[order][dup + 1]
        i = int(np.argmin(later))
        first, second = int(rows[order][dup[i]]), int(later[i])
        k = int(keys[order][dup[i]])
        yr, x, y = (k >> 44) + 1900, (k >> 22) & (2**22 - 1), k & (2**22 - 1)
        raise ScoreFileError(
            f"{path}:{second}: duplicate tile-year (tile x={x} y={y}, year {yr}; "
            f"first on row {first})"
        )


def grid_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Parsed rows (z, x, y, score, inhabited) as ``siscore_grid`` columns, in the file's order
    (sums over tiles then add in the same order as for the grid the file was exported from)."""
    out = pd.DataFrame(
        {
            "tile_id": [
                make_tile_id(int(z), int(x), int(y))
                for z, x, y in zip(frame["z"], frame["x"], frame["y"], strict=True)
            ],
            "z": frame["z"].to_numpy(np.int64),
            "x": frame["x"].to_numpy(np.int64),
            "y": frame["y"].to_numpy(np.int64),
            "raw_score": frame["score"].to_numpy(float),
            "inhabited": frame["inhabited"].to_numpy(bool),
            "score": frame["score"].to_numpy(float),
        }
    )
    return out


def read_raster_year(path_pattern: str, year: int, *, zoom: int) -> pd.DataFrame:
    """``year``'s scores from a GeoTIFF (``{year}`` in the pattern): every pixel centre on the
    zoom-``zoom`` grid is a tile (a raster written on the grid, as ``siscore_raster`` writes
    them); nodata pixels are left out."""
    import mercantile
    import rasterio
    import rasterio.transform
    import rasterio.warp

    path = Path(path_pattern.format(year=year))
    if not path.is_file():
        raise ScoreFileError(f"{path}: no score raster for {year}")
    with rasterio.open(path) as src:
        if src.crs is None:
            raise ScoreFileError(f"{path}: the raster has no CRS")
        rows = []
        for _, window in src.block_windows(1):
            band = src.read(1, window=window, masked=True)
            rr, cc = np.nonzero(~np.ma.getmaskarray(band))
            if not len(rr):
                continue
            xs, ys = rasterio.transform.xy(src.window_transform(window), rr, cc, offset="center")
            lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", xs, ys)
            for lo, la, v in zip(lon, lat, np.asarray(band[rr, cc], float), strict=True):
                t = mercantile.tile(lo, la, zoom)
                rows.append((zoom, t.x, t.y, v))
    frame = pd.DataFrame(rows, columns=["z", "x", "y", "score"])
    if frame.empty:
        raise ScoreFileError(f"{path}: no scored pixel")
    if frame.duplicated(["x", "y"]).any():
        raise ScoreFileError(
            f"{path}: several pixels fall in one zoom-{zoom} tile: write one pixel per tile"
        )
    frame["inhabited"] = frame["score"] > 0
    return grid_rows(frame)


def country_year_scores(
    country: CountryConfig, year: int, *, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """An analysis-only country's ``year`` in ``siscore_grid``'s columns, from its score file
    (a CSV, checked whole, or the year's GeoTIFF); a missing file is a :class:`ScoreFileError`."""
    try:
        path = country.score_file(year if country.source.is_raster else None)
    except CountryConfigError as exc:
        raise ScoreFileError(str(exc)) from None
    if country.source.is_raster:
        return read_raster_year(str(path), year, zoom=country.zoom)
    return read_year(path, year, zoom=country.zoom, years=country.years, chunk_rows=chunk_rows)


def country_tiles(country: CountryConfig, *, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """An analysis-only country's grid: every tile its score file names, any year (``tile_id``,
    ``z``, ``x``, ``y``, by tile id), what ``patches`` gives an imagery country's layers."""
    if country.source.is_raster:
        found = []
        for year in country.years:
            try:
                found.append(country_year_scores(country, year)[["z", "x", "y"]])
            except ScoreFileError:
                if not found:
                    raise
        return _tile_frame(pd.concat(found).drop_duplicates())
    try:
        path = country.score_file()
    except CountryConfigError as exc:
        raise ScoreFileError(str(exc)) from None
    return read_tiles(path, zoom=country.zoom, years=country.years, chunk_rows=chunk_rows)
