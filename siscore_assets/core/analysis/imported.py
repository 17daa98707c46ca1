"""Imported tile-level scores (other models) and proxies (other ground data), read and checked.

An import is a file an analyst brings: a CSV keyed by tile id (``z/x/y`` or the NK sample's
``y_x``) with a ``score`` (scores) or ``value`` (proxies) column and an optional ``year``, or a
single-band GeoTIFF sampled at tile centres.  The CLI (``siscore scores import`` / ``siscore
proxies import``) checks the whole file first and writes nothing when anything is wrong; every
problem names file, line and column.  Accepted files are stored under the data root
(``<root>/<country>/imports/<kind>/<name>.<ext>`` with a ``<name>.json`` sidecar) and the
``imported_scores`` / ``imported_proxies`` assets load every stored import into DuckDB.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.imagery.grid import parse_tile_id
from siscore_assets.core.storage.files import atomic_path
from siscore_assets.core.storage.paths import safe_join, safe_name

KINDS = {"scores": "score", "proxies": "value"}  # import kind -> its value column
TILE_COLUMNS = ("tile_id", "tile", "y_x")
CSV_SUFFIXES = (".csv",)
RASTER_SUFFIXES = (".tif", ".tiff")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_REPORTED = 10
#: Names an import may not take: they are the platform's own models and proxies.
RESERVED_NAMES = frozenset(
    {
        "siscore",
        "siscore_raw",
        "nl_regression",
        "nl_guided_pog",
        "lc_guided_pog",
        "building_floor_area_m2",
        "population",
        "nightlight",
        "built_up_share",
        "true_development",
        "building_area_density",
        "population_density",
    }
)
FRAME_COLUMNS = ["name", "year", "tile_id", "z", "x", "y", "value", "source_line"]


class ImportFileError(ValueError):
    """An import file that cannot be used; the message lists each problem as file:line: column."""


@dataclass(frozen=True)
class ImportSpec:
    """What the sidecar JSON records about one stored import."""

    name: str
    kind: str
    format: str  # 'csv' | 'geotiff'
    file: str  # stored file name, next to the sidecar
    original: str
    year: int | None = None  # rasters: the year they describe (None = every year)
    district: str = "density"  # proxies: how districts aggregate them ('density' | 'mean')

    def sidecar(self, folder: Path) -> Path:
        return folder / safe_name(f"{self.name}.json", "import name")


def check_name(name: str, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown import kind {kind!r} (one of {', '.join(KINDS)})")
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"import name {name!r}: use lower-case letters, digits and '_', "
            "starting with a letter (≤ 40)"
        )
    if name in RESERVED_NAMES:
        raise ValueError(
            f"import name {name!r} is reserved for a built-in model or proxy; choose another"
        )


def imports_dir(data_root: str | Path, country: str, kind: str) -> Path:
    """``<root>/<country>/imports/<kind>``, every part checked to stay under the data root."""
    return safe_join(data_root, country, "imports", kind, what="import folder part")


def utf8_text(path: Path) -> io.StringIO:
    """The file's text, for ``csv``; a file that is not UTF-8 (a spreadsheet's Latin-1 or
    UTF-16 export) is named with the line of its first bad byte, not a bare codec message."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}): save the file as "
            "CSV UTF-8"
        ) from None
    return io.StringIO(text, newline="")


def read_tile_csv(
    path: str | Path,
    value_col: str,
    *,
    zoom: int,
    years: Collection[int] | None = None,
) -> pd.DataFrame:
    """Read and check a tile CSV; returns :data:`FRAME_COLUMNS` (without ``name``).

    Checks, all reported together (up to :data:`MAX_REPORTED`): a tile column
    (``tile_id``/``tile``/``y_x``) and ``value_col`` exist; each tile id parses; each value is a
    finite number; ``year`` (if the column exists) is an integer on every row and one of
    ``years``; no tile appears twice for the same year.
    """
    path = Path(path)
    problems: list[str] = []
    rows: list[dict] = []
    seen: dict[tuple[str, int | None], int] = {}
    with utf8_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ImportFileError(f"{path}: empty file (expected a header line)")
        header = [h.strip() for h in header]
        tile_col = next((c for c in TILE_COLUMNS if c in header), None)
        missing = ([] if tile_col else ["tile_id"]) + ([] if value_col in header else [value_col])
        if missing:
            raise ImportFileError(
                f"{path}:1: missing column(s) {', '.join(missing)} "
                f"(header: {', '.join(header)}; "
                f"the tile column may be named {'/'.join(TILE_COLUMNS)})"
            )
        i_tile, i_val = header.index(tile_col), header.index(value_col)
        i_year = header.index("year") if "year" in header else None
        for line_no, rec in enumerate(reader, start=2):
            if not any(field.strip() for field in rec):
                continue  # blank line
            where = f"{path}:{line_no}"
            if len(rec) != len(header):
                problems.append(f"{where}: {len(rec)} fields, header has {len(header)}")
                continue
            raw_tile, raw_val = rec[i_tile].strip(), rec[i_val].strip()
            try:
                tile = parse_tile_id(raw_tile, zoom)
            except ValueError as exc:
                problems.append(f"{where}: column {tile_col}: {exc}")
                tile = None
            try:
                value = float(raw_val)
                if not math.isfinite(value):
                    raise ValueError
            except ValueError:
                problems.append(f"{where}: column {value_col}: not a finite number: {raw_val!r}")
                value = None
            year = None
            if i_year is not None:
                raw_year = rec[i_year].strip()
                try:
                    year = int(raw_year)
                except ValueError:
                    problems.append(f"{where}: column year: not an integer year: {raw_year!r}")
                else:
                    if years is not None and year not in years:
                        problems.append(
                            f"{where}: column year: {year} is not a configured year "
                            f"({', '.join(map(str, sorted(years)))})"
                        )
            if tile is None or value is None or (i_year is not None and year is None):
                continue
            key = (tile.tile_id, year)
            if key in seen:
                problems.append(
                    f"{where}: column {tile_col}: duplicate tile {tile.tile_id}"
                    + (f" for year {year}" if year is not None else "")
                    + f" (first on line {seen[key]})"
                )
                continue
            seen[key] = line_no
            rows.append(
                {
                    "year": year,
                    "tile_id": tile.tile_id,
                    "z": tile.z,
                    "x": tile.x,
                    "y": tile.y,
                    "value": value,
                    "source_line": line_no,
                }
            )
    if problems:
        more = len(problems) - MAX_REPORTED
        text = "\n".join(problems[:MAX_REPORTED]) + (
            f"\n… and {more} more problem(s)" if more > 0 else ""
        )
        raise ImportFileError(f"{path}: {len(problems)} problem(s):\n{text}")
    if not rows:
        raise ImportFileError(f"{path}: no data rows")
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("Int64")
    return frame


def check_raster(path: str | Path) -> dict:
    """Open a GeoTIFF and check it can be sampled: readable, a CRS, at least one band."""
    import rasterio

    path = Path(path)
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ImportFileError(f"{path}: raster has no CRS; cannot place tile centres on it")
            if src.count < 1:
                raise ImportFileError(f"{path}: raster has no bands")
            return {
                "crs": src.crs.to_string(),
                "width": src.width,
                "height": src.height,
                "bands": src.count,
                "nodata": src.nodata,
            }
    except rasterio.errors.RasterioIOError as exc:
        raise ImportFileError(f"{path}: not a readable raster: {exc}") from exc


def sample_raster(path: str | Path, tiles: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Band 1 of a raster at the centre of every tile (``z, x, y, tile_id``).

    Tiles whose centre is outside the raster, or on nodata / NaN, get no row; their numbers are
    returned (``outside``, ``nodata``) so nothing goes missing silently.
    """
    import mercantile
    import rasterio
    from rasterio.warp import transform as warp

    check_raster(path)
    t = tiles[["tile_id", "z", "x", "y"]].drop_duplicates("tile_id").reset_index(drop=True)
    if t.empty:
        return pd.DataFrame(columns=["tile_id", "z", "x", "y", "value"]), {
            "outside": 0,
            "nodata": 0,
        }
    b = [
        mercantile.xy_bounds(int(x), int(y), int(z))
        for z, x, y in zip(t["z"], t["x"], t["y"], strict=True)
    ]
    cx = [(q.left + q.right) / 2 for q in b]
    cy = [(q.bottom + q.top) / 2 for q in b]
    with rasterio.open(path) as src:
        xs, ys = warp("EPSG:3857", src.crs, cx, cy)
        rows, cols = rasterio.transform.rowcol(src.transform, xs, ys)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        band = src.read(1, masked=True)
        values = np.full(len(t), np.nan)
        ri, ci = rows[inside], cols[inside]
        vals = band[ri, ci]
        values[inside] = np.ma.filled(vals.astype(float), np.nan)
    ok = np.isfinite(values)
    out = t.loc[ok].copy()
    out["value"] = values[ok]
    return out.reset_index(drop=True), {
        "outside": int((~inside).sum()),
        "nodata": int((inside & ~ok).sum()),
    }


def validate_file(
    path: str | Path, kind: str, *, zoom: int, years: Collection[int]
) -> tuple[str, pd.DataFrame | None]:
    """Check an import file before it is stored: ('csv', frame) or ('geotiff', None)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv", read_tile_csv(path, KINDS[kind], zoom=zoom, years=years)
    if suffix in RASTER_SUFFIXES:
        check_raster(path)
        return "geotiff", None
    raise ImportFileError(f"{path}: unsupported file type {suffix!r} (CSV or GeoTIFF)")


def store(path: str | Path, spec: ImportSpec, folder: Path) -> Path:
    """Copy the checked file and its sidecar into the imports folder (atomically, file first)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(spec.file, "import file name")
    with atomic_path(target) as tmp:
        shutil.copyfile(path, tmp)
    with atomic_path(spec.sidecar(folder)) as tmp:
        tmp.write_text(json.dumps(asdict(spec), indent=1) + "\n", encoding="utf-8")
    return target


def stored_specs(folder: Path) -> list[ImportSpec]:
    """Every import stored in ``folder`` (sidecars), by name."""
    if not folder.is_dir():
        return []
    specs = []
    for side in sorted(folder.glob("*.json")):
        try:
            specs.append(ImportSpec(**json.loads(side.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ImportFileError(f"{side}: not an import sidecar: {exc}") from exc
    return specs


def load_folder(
    folder: Path,
    kind: str,
    *,
    zoom: int,
    years: Collection[int],
    tiles: pd.DataFrame,
) -> tuple[pd.DataFrame, list[dict]]:
    """Every stored import of a kind as one long frame (:data:`FRAME_COLUMNS`), plus per-import
    counts (rows, years, raster tiles outside / on nodata).  Rasters are sampled at ``tiles``."""
    frames, report = [], []
    for spec in stored_specs(folder):
        path = folder / safe_name(spec.file, "import file name")
        info: dict = {"name": spec.name, "format": spec.format, "file": str(path)}
        if spec.format == "csv":
            frame = read_tile_csv(path, KINDS[kind], zoom=zoom, years=years)
        else:
            frame, counts = sample_raster(path, tiles)
            frame["year"] = pd.array([spec.year] * len(frame), dtype="Int64")
            frame["source_line"] = 0
            info.update({f"raster_{k}": v for k, v in counts.items()})
        frame.insert(0, "name", spec.name)
        info["rows"] = len(frame)
        present = sorted(int(y) for y in frame["year"].dropna().unique())
        info["years"] = ",".join(map(str, present)) if present else "all"
        info["missing_years"] = ",".join(str(y) for y in years if present and y not in present)
        frames.append(frame[FRAME_COLUMNS])
        report.append(info)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)
    return out, report


def for_year(frame: pd.DataFrame, year: int) -> pd.DataFrame:
    """The rows that describe ``year``: those for that year plus year-less rows."""
    if frame.empty:
        return frame
    y = frame["year"]
    return frame[(y == year).fillna(False).to_numpy(dtype=bool) | y.isna().to_numpy()]


def names(specs: Iterable[ImportSpec]) -> list[str]:
    return [s.name for s in specs]


def typed_table(frame: pd.DataFrame, country: str, kind: str) -> pd.DataFrame:
    """Loaded rows with fixed column types, also when empty (so the table has its schema)."""
    return pd.DataFrame(
        {
            "country": pd.Series([country] * len(frame), dtype=object),
            "name": frame["name"].astype(object).to_numpy(),
            "year": pd.array(frame["year"], dtype="Int64"),
            "tile_id": frame["tile_id"].astype(object).to_numpy(),
            "z": frame["z"].astype("int64").to_numpy(),
            "x": frame["x"].astype("int64").to_numpy(),
            "y": frame["y"].astype("int64").to_numpy(),
            KINDS[kind]: frame["value"].astype(float).to_numpy(),
            "source_line": frame["source_line"].astype("int64").to_numpy(),
        }
    )


def needs_tiles(folder: Path) -> bool:
    """Whether a stored import is a raster, which is sampled at the country's tile centres."""
    return any(s.format == "geotiff" for s in stored_specs(folder))
