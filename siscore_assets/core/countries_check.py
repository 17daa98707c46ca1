"""Everything a countries file points at, checked when the file is used, not 49 s into a run.

The schema (``countries.py``) says whether a value is well formed; this says whether what it names
is there and usable: the tile folder (``$root_env`` first, then ``source.root`` against the
working directory and the project root, as the source reads it), each year folder's layout and
where its tiles are (64 names read as tile ids: inside the country's bbox, else on land, so
tiles named ``<x>_<y>`` are not scored in Antarctica); the cluster and pretraining folders (any
value but their keywords is a folder: a misspelt keyword is a folder not found); every vector
layer's file, CRS and geometry type, and the columns a layer's settings name; every proxy
raster's CRS.  Only metadata is read (a layer's header, folder listings, no image), so a whole
country is checked in well under a second, plus about one for the land mask when a tile-folder
country has no bbox.  A problem is :class:`~siscore_assets.core.countries.CountriesFileError`,
``FILE:LINE: problem`` at the key that names the thing.  The run-time checks stay: a file can
vanish between the check and the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from siscore_assets.core.countries import (
    CLUSTERS_DEEPCLUSTER,
    CLUSTERS_KMEANS,
    GENERATED,
    NONE,
    PRETRAIN_KIT,
    PROJECT_ROOT,
    CountriesFileError,
    CountryConfig,
    CountryConfigError,
    CountryRegistry,
    KeyLines,
    search_paths,
    source_root,
)
from siscore_assets.core.model_settings import start_from_problem

POINTS = ("Point", "MultiPoint")
POLYGONS = ("Polygon", "MultiPolygon")
#: The covariate kind whose layer may be zones (polygons) as well as points.
ZONE_KIND = "edz"
#: The keywords of the settings whose any other value is a folder.
KEYWORDS = {
    "clusters": (CLUSTERS_KMEANS, CLUSTERS_DEEPCLUSTER),
    "pretrain": (GENERATED, PRETRAIN_KIT),
}
_IMAGE = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_TILE_NAME = re.compile(r"^\d+_\d+$")
#: Tiles of a year whose place is checked (names read: no file is opened).
SAMPLE = 64


class _Where:
    """Raises the ``FILE:LINE: problem`` of one country's keys."""

    def __init__(self, registry: CountryRegistry, code: str) -> None:
        self.lines = registry.lines or KeyLines(registry.path)
        self.code = code

    def fail(self, keys: Sequence[Any], problem: str) -> NoReturn:
        raise self.lines.error(("countries", self.code, *keys), f"country {self.code}: {problem}")


def check_countries(registry: CountryRegistry, codes: Iterable[str] | None = None) -> None:
    """Check what every country (or ``codes``) names; the first problem is raised."""
    for code in codes or registry.codes:
        check_country(registry, registry.get(code))


def check_country(registry: CountryRegistry, cfg: CountryConfig) -> None:
    where = _Where(registry, cfg.code)
    if cfg.source_kind == "tile_folder":
        _tile_folder(cfg, where)
    if cfg.source_kind == "stac" and cfg.source.aoi is not None:
        _stac_aoi(cfg, where)
    if cfg.analysis_only:
        _score_file(cfg, where)
    for key, keywords in KEYWORDS.items():
        value = getattr(cfg, key)
        if value not in keywords:  # any other value is a folder, a misspelt keyword too
            folder = _folder(cfg, value, key, where, keywords)
            if key == "pretrain" and not (folder / "labels.csv").is_file():
                where.fail([key], f"pretrain folder {folder} has no labels.csv")
    if cfg.models.start_from:
        _start_from(registry, cfg, where)
    if _is_file_layer(cfg.districts):
        _districts(cfg, where)
    if _is_file_layer(cfg.covariates):
        _covariates(cfg, where)
    if isinstance(cfg.proxies, dict):
        for name, file in cfg.proxies.items():
            for path in _yearly(cfg, file, lambda f, n=name: _file(cfg, "proxies", f, where, [n])):
                _raster(path, where, ["proxies", name])


# ---- imagery -----------------------------------------------------------------------------------


def _start_from(registry: CountryRegistry, cfg: CountryConfig, where: _Where) -> None:
    """``models.start_from`` names another country of this file whose networks read the same
    input (its trained files are checked when the model is made: they may not exist yet)."""
    name = cfg.models.start_from
    if name not in registry.codes:
        where.fail(
            ["models", "start_from"],
            f"start_from {name} is not a country of this file ({', '.join(registry.codes)})",
        )
    problem = start_from_problem(cfg.code, cfg.models, name, registry.get(name).models)
    if problem:
        where.fail(["models", "start_from"], problem.removeprefix(f"country {cfg.code}: "))


def _tile_folder(cfg: CountryConfig, where: _Where) -> None:
    env = cfg.source.root_env
    key = ["source", "root_env"] if env and os.environ.get(env) else ["source", "root"]
    try:
        root = source_root(cfg)
    except CountryConfigError as exc:
        where.fail(key, str(exc).removeprefix(f"country {cfg.code}: "))
    tiles = root / cfg.source.tiles
    if not tiles.is_dir():
        where.fail(["source", "tiles"], f"no tiles folder {tiles}")
    present = [y for y in cfg.years if (tiles / str(y)).is_dir()]
    for i, year in enumerate(cfg.years):
        folder = tiles / str(year)
        if not folder.is_dir():
            if present and year > max(present):
                continue  # a later year not delivered yet: the imagery sensor waits for it
            where.fail(["years", i], f"no tile folder for {year}: {folder}")
        problem = _layout_problem(folder, cfg.zoom)
        if problem:
            where.fail(["source", "tiles"], f"{folder}: {problem}")
    problem = _placement_problem(cfg, {y: _sample(tiles / str(y), cfg.zoom) for y in present})
    if problem:
        where.fail(["source", "tiles"], f"{tiles}: {problem}")


def _stac_aoi(cfg: CountryConfig, where: _Where) -> None:
    """A STAC source's AOI file: there, GeoJSON, polygons in lon/lat (read as ingest reads it;
    else the problem showed only when a year was ingested)."""
    from siscore_assets.core.imagery.stac.config import load_aoi

    try:
        load_aoi(cfg.source, base=PROJECT_ROOT)
    except ValueError as exc:
        where.fail(["source", "aoi"], str(exc))


def _yearly(cfg: CountryConfig, file: str, find: Callable[[str], Path]) -> list[Path]:
    """A file, or with ``{year}`` in its name each configured year's (the first year's must be
    there; a later one may not be delivered yet)."""
    if "{year}" not in file:
        return [find(file)]
    found = [find(file.replace("{year}", str(cfg.years[0])))]
    for year in cfg.years[1:]:
        try:
            found.append(cfg.layer_file("proxies", file.replace("{year}", str(year))))
        except CountryConfigError:
            continue  # a later year not delivered yet
    return found


def _score_file(cfg: CountryConfig, where: _Where) -> None:
    """An analysis-only country's score file: there (each year's, for a GeoTIFF with ``{year}``;
    a later year may not be delivered yet), a CSV's header naming tile_id, year and score, a
    GeoTIFF with a CRS.  The rows are checked when read (``core/analysis/score_source.py``)."""
    key = ["source", "file"]
    if cfg.source.is_raster:
        found = []
        for i, year in enumerate(cfg.years):
            try:
                found.append(cfg.score_file(year))
            except CountryConfigError as exc:
                if found:
                    continue  # a later year not delivered yet
                where.fail(["years", i], str(exc).removeprefix(f"country {cfg.code}: "))
            _raster(found[-1], where, key)
        return
    try:
        path = cfg.score_file()
    except CountryConfigError as exc:
        where.fail(key, str(exc).removeprefix(f"country {cfg.code}: "))
    with path.open(encoding="utf-8", errors="replace") as f:
        header = [c.strip() for c in f.readline().strip().split(",")]
    missing = [c for c in ("tile_id", "year", "score") if c not in header]
    if missing:
        where.fail(
            key, f"{path}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})"
        )


def _layout_problem(folder: Path, zoom: int) -> str | None:
    """The first image file's name read as a tile id (``<y>_<x>.png`` or ``<z>/<x>/<y>.png``):
    a description of what is wrong, or None.  Only that one file is looked at."""
    first = _first_image(folder)
    if first is None:
        return "no tile images (expected <y>_<x>.png or <z>/<x>/<y>.png)"
    parts = first.relative_to(folder).with_suffix("").parts
    if len(parts) == 1 and _TILE_NAME.match(parts[0]):
        return None
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        if int(parts[0]) != zoom:
            return f"tiles are zoom {parts[0]} ({'/'.join(parts)}) but the country's zoom is {zoom}"
        return None
    return f"{first.name}: expected <y>_<x>.png or <z>/<x>/<y>.png, got {'/'.join(parts)}"


def _sample(folder: Path, zoom: int) -> list[tuple[str, int, int]]:
    """Up to :data:`SAMPLE` tiles of a year folder, spread evenly over its sorted names: (file,
    x, y) as the names read, ``<y>_<x>.png`` or ``<zoom>/<x>/<y>.png`` (names only)."""
    flat = [(n, int(s[1]), int(s[0])) for n, s in _tiles_in(folder) if len(s) == 2]
    if flat or not (folder / str(zoom)).is_dir():
        return _spread(flat, SAMPLE)
    with os.scandir(folder / str(zoom)) as entries:
        xs = sorted(e.name for e in entries if e.is_dir() and e.name.isdigit())
    out = []
    for x in _spread(xs, 8):  # 8 columns, 8 tiles down each
        column = [(n, s[0]) for n, s in _tiles_in(folder / str(zoom) / x) if len(s) == 1]
        out += [(f"{zoom}/{x}/{n}", int(x), int(y)) for n, y in _spread(column, SAMPLE // 8)]
    return out


def _tiles_in(folder: Path) -> list[tuple[str, list[str]]]:
    """The image files of a folder named as numbers (``6259_13990.png``: its numbers), sorted."""
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
    out = []
    for name in names:
        stem, suffix = os.path.splitext(name)
        numbers = stem.split("_")
        if suffix.lower() in _IMAGE and len(numbers) <= 2 and all(n.isdigit() for n in numbers):
            out.append((name, numbers))
    return out


def _spread(items: list, n: int) -> list:
    """``n`` of ``items`` evenly spaced from the first to the last (all when fewer)."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _placement_problem(cfg: CountryConfig, sampled: dict[int, list]) -> str | None:
    """Whether each year's sampled tiles are where the country is: some of them inside its
    ``bbox`` when it has one, else some of them on land (GLOBE 1 km mask, offline).  Tiles named
    ``<x>_<y>`` (a common export naming) read as tiles elsewhere on Earth, often at sea or in
    Antarctica, and every layer then finds nothing; such a folder is named, with the reading
    that would fit.  A country at sea (an offshore test block) states its bbox."""
    from siscore_assets.core import land_mask

    n = 2**cfg.zoom
    for year, tiles in sampled.items():
        for name, x, y in tiles:
            if max(x, y) >= n:
                return (
                    f"tile {year}/{name} is outside the zoom-{cfg.zoom} grid (x and y below {n}): "
                    "tiles of another zoom? (the country's zoom is set by `zoom`)"
                )
    try:
        fits = _fitting(cfg, sorted({(x, y) for tiles in sampled.values() for _, x, y in tiles}))
        for year, tiles in sampled.items():
            if tiles and not any(fits[(x, y)] for _, x, y in tiles):
                swap_fits = any(_fitting(cfg, [(y, x) for _, x, y in tiles]).values())
                return _misplaced(cfg, year, tiles, swap_fits)
    except land_mask.LandMaskError as exc:
        return str(exc)
    return None


def _misplaced(cfg: CountryConfig, year: int, tiles: list, swap_fits: bool) -> str:
    """Where a year's tiles are, and why not there: the names' order when swapped they fit."""
    lon, lat = (float(np.median(c)) for c in zip(*(_centre(cfg.zoom, x, y) for _, x, y in tiles)))
    off = f"outside the bbox {list(cfg.bbox)}" if cfg.bbox else "in the sea (GLOBE land mask)"
    if not swap_fits:
        hint = f"check the tile names and the country's zoom ({cfg.zoom})"
    elif "/" in tiles[0][0]:
        hint = "named <z>/<y>/<x>? expected <z>/<x>/<y>"
    else:
        hint = "named <x>_<y>? expected <y>_<x>"
    return (
        f"tiles of {year} centre at lon {lon:.1f}, lat {lat:.1f}, {off} "
        f"(e.g. {year}/{tiles[0][0]}): {hint}"
    )


def _centre(zoom: int, x: int, y: int) -> tuple[float, float]:
    from siscore_assets.core.imagery.grid import Tile

    return Tile(zoom, x, y).center_lonlat()


def _fitting(cfg: CountryConfig, points: list[tuple[int, int]]) -> dict[tuple[int, int], bool]:
    """Whether each tile (x, y) overlaps the country's bbox, or without one, centres on land."""
    from siscore_assets.core import land_mask
    from siscore_assets.core.imagery.grid import Tile

    if not points:
        return {}
    if cfg.bbox:
        w, s, e, n = cfg.bbox
        out = {}
        for x, y in points:
            tw, ts, te, tn = Tile(cfg.zoom, x, y).bounds_lonlat()
            out[(x, y)] = tw < e and te > w and ts < n and tn > s
        return out
    lon, lat = np.array([_centre(cfg.zoom, x, y) for x, y in points]).T
    return dict(zip(points, land_mask.is_land(lon, lat).tolist()))


def _first_image(folder: Path, depth: int = 0) -> Path | None:
    with os.scandir(folder) as entries:
        items = sorted(entries, key=lambda e: e.name)
    for e in items:
        if e.is_file() and not e.name.startswith(".") and e.name.lower().endswith(_IMAGE):
            return Path(e.path)
    for e in items:
        if e.is_dir() and depth < 2 and not e.name.startswith("."):
            found = _first_image(Path(e.path), depth + 1)
            if found is not None:
                return found
    return None


# ---- files and folders -------------------------------------------------------------------------


def _is_file_layer(spec: Any) -> bool:
    return spec not in (GENERATED, NONE)


def _folder(
    cfg: CountryConfig, value: str, key: str, where: _Where, keywords: Sequence[str]
) -> Path:
    try:
        path = cfg.resolve(value)
    except CountryConfigError as exc:
        where.fail([key], str(exc).removeprefix(f"country {cfg.code}: "))
    tried = search_paths(path)
    for cand in tried:
        if cand.is_dir():
            return cand
    where.fail(
        [key],
        f"{key} folder not found: {value} (tried {', '.join(map(str, tried))}); "
        f"{key} is {', '.join(keywords)} or a folder",
    )


def _file(cfg: CountryConfig, layer: str, value: str, where: _Where, keys: list) -> Path:
    try:
        return cfg.layer_file(layer, value)
    except CountryConfigError as exc:
        where.fail([layer, *keys], str(exc).removeprefix(f"country {cfg.code}: "))


def _vector(path: Path, where: _Where, keys: list, what: str) -> dict:
    """A vector layer's header (pyogrio: CRS, geometry type, fields), checked to have a CRS."""
    import pyogrio

    try:
        info = pyogrio.read_info(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio's errors do not name the file
        where.fail(keys, f"{what} layer {path} cannot be read: {' '.join(str(exc).split())}")
    if info.get("crs") is None:
        hint = " (a shapefile without its .prj?)" if path.suffix.lower() == ".shp" else ""
        where.fail(keys, f"{what} layer {path} has no CRS{hint}")
    return info


def _geometry(info: dict, allowed: Sequence[str], path: Path, where: _Where, keys, what) -> None:
    kind = str(info.get("geometry_type") or "Unknown")
    base = kind.replace(" Z", "").replace(" M", "").replace("3D ", "")
    if base != "Unknown" and base not in allowed:
        where.fail(
            keys, f"{what} layer {path} has {kind} geometries; expected {' or '.join(allowed)}"
        )


def _columns(info: dict, wanted: dict[str, str], path: Path, where: _Where, keys: list) -> None:
    fields = [str(f) for f in info.get("fields", [])]
    for role, column in wanted.items():
        if column not in fields:
            where.fail(
                [*keys, role], f"{path} has no column {column!r} (columns: {', '.join(fields)})"
            )


def _districts(cfg: CountryConfig, where: _Where) -> None:
    spec = cfg.districts
    keys = ["file"] if isinstance(spec, dict) else []
    path = _file(cfg, "districts", spec["file"] if isinstance(spec, dict) else spec, where, keys)
    info = _vector(path, where, ["districts", *keys], "districts")
    _geometry(info, POLYGONS, path, where, ["districts", *keys], "districts")
    _columns(info, cfg.layer_options("districts"), path, where, ["districts"])


def _covariates(cfg: CountryConfig, where: _Where) -> None:
    spec = cfg.covariates
    if isinstance(spec, str):
        path = _file(cfg, "covariates", spec, where, [])
        info = _vector(path, where, ["covariates"], "covariates")
        _geometry(info, POINTS + POLYGONS, path, where, ["covariates"], "covariates")
        _columns(info, {"kind": "kind"}, path, where, ["covariates"])
        return
    for kind, entry in spec.items():
        opts = {"file": entry} if isinstance(entry, str) else dict(entry)
        keys = [kind] if isinstance(entry, str) else [kind, "file"]
        path = _file(cfg, "covariates", str(opts["file"]), where, keys)
        what = f"{kind} covariate"
        info = _vector(path, where, ["covariates", *keys], what)
        allowed = POINTS + POLYGONS if kind == ZONE_KIND else POINTS
        _geometry(info, allowed, path, where, ["covariates", *keys], what)
        if "type" in opts:
            _columns(info, {"type": opts["type"]}, path, where, ["covariates", kind])


def _raster(path: Path, where: _Where, keys: list) -> None:
    import rasterio

    try:
        with rasterio.open(path) as src:
            crs = src.crs
    except Exception as exc:  # noqa: BLE001 - rasterio's errors do not always name the file
        where.fail(keys, f"raster {path} cannot be read: {' '.join(str(exc).split())}")
    if crs is None:
        where.fail(keys, f"raster {path} has no CRS")


__all__ = ["CountriesFileError", "check_countries", "check_country"]
