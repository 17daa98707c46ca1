"""A new country's entry from an area of interest: what ``siscore country add`` writes.

The AOI is a polygon layer in any format GDAL reads (GeoJSON, GeoPackage, shapefile) and any CRS,
or a lon/lat bbox.  It is checked (it reads, has a CRS, its polygons are valid, has polygon
area), dissolved into one lon/lat polygon, kept as a GeoJSON file beside the user's countries
file, and measured: the zoom-z tiles whose centre lies inside it (an AOI whose tiles are all sea
is refused), and the disk their tile store needs.  The entry is appended to the user's countries
file as text (the file's comments stay) only after the whole new file validates and the new
entry passes the check ``siscore countries`` runs; the packaged file is never written.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from siscore_assets.core.countries import CountriesFileError, CountryConfigError, load_countries
from siscore_assets.core.countries_check import check_countries

#: Bytes of one tile-year in the tile store: 256 x 256 RGB uint8 (``source.store_px`` shrinks it).
TILE_BYTES = 256 * 256 * 3
#: Bytes of one tile's STAC read record (RGB + the scene flag), on disk while its year is read.
RECORD_BYTES = 256 * 256 * 4


class AoiError(ValueError):
    """An AOI that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Aoi:
    geometry: object  # a shapely (Multi)Polygon in lon/lat
    bbox: tuple[float, float, float, float]


def read_aoi(path: Path) -> Aoi:
    """The AOI file's polygons dissolved into one lon/lat geometry; AoiError when it does not
    read, has no CRS, has a polygon that is not valid (its number and shapely's reason, as
    ``siscore countries`` reports it) or has no polygon area."""
    import geopandas as gpd
    import shapely

    path = Path(path)
    if not path.is_file():
        raise AoiError(f"{path}: no such file")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio's errors do not name the file
        raise AoiError(
            f"{path}: not a readable vector file ({' '.join(str(exc).split())})"
        ) from None
    if not isinstance(gdf, gpd.GeoDataFrame):  # a table without geometry (a CSV) reads as one
        raise AoiError(f"{path}: no geometry column: not a vector layer (GeoPackage, GeoJSON, ...)")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if gdf.empty:
        raise AoiError(f"{path}: no features with a geometry")
    if gdf.crs is None:
        raise AoiError(f"{path}: no CRS (a shapefile without its .prj?); set one and try again")
    kinds = set(gdf.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise AoiError(
            f"{path}: the AOI must be polygons, found {', '.join(sorted(kinds))} geometries"
        )
    valid = gdf.geometry.is_valid.to_numpy()
    if not valid.all():  # a bow tie or a stray hole: the union fails, or covers the wrong area
        bad = gdf.geometry.iloc[int(valid.argmin())]
        number = gdf.index[int(valid.argmin())]  # the file's feature number (null ones left out)
        raise AoiError(
            f"{path}: feature {number}: invalid polygon ({shapely.is_valid_reason(bad)}); "
            "repair it (QGIS: Fix geometries; shapely.make_valid) and try again"
        )
    geom = gdf.to_crs(4326).geometry.union_all()
    if geom.is_empty or geom.area <= 0:
        raise AoiError(f"{path}: the AOI has no area (degenerate polygons)")
    w, _, e, _ = geom.bounds
    if e - w > 180:  # no country spans half the world: its outline was wrapped at 180 degrees
        raise AoiError(
            f"{path}: the AOI spans {e - w:.0f} degrees of longitude once in lon/lat: it crosses "
            "the 180th meridian; add each side as a country of its own (split the AOI at 180)"
        )
    return _aoi(geom, str(path))


def bbox_aoi(text: str) -> Aoi:
    """``W,S,E,N`` in degrees as an AOI."""
    import shapely

    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise AoiError(f"--bbox {text!r}: expected W,S,E,N in degrees") from None
    if not (-180 <= w < e <= 180 and -85 <= s < n <= 85):
        raise AoiError(f"--bbox {text!r}: expected -180 <= W < E <= 180 and -85 <= S < N <= 85")
    return _aoi(shapely.box(w, s, e, n), "--bbox")


def _aoi(geom, where: str) -> Aoi:
    w, s, e, n = geom.bounds
    if not (w >= -180 and e <= 180 and s >= -85.05 and n <= 85.05):
        raise AoiError(
            f"{where}: the AOI is outside the Web-Mercator world (lon/lat {geom.bounds})"
        )
    return Aoi(geom, (round(w, 5), round(s, 5), round(e, 5), round(n, 5)))


@dataclass(frozen=True)
class TileCount:
    tiles: int  # zoom-z tiles the AOI intersects: what ingest fetches
    on_land: int  # of them, those whose centre is on land (GLOBE 1 km mask: lakes count as land)


def count_tiles(aoi: Aoi, zoom: int) -> TileCount:
    """The zoom-``zoom`` tiles a STAC ingest of the AOI fetches (:func:`grid.aoi_tile_rows`,
    the ingest's own rule), and how many of their centres are land (row by row: a country of
    400,000 tiles never holds its grid in memory at once)."""
    from siscore_assets.core import land_mask
    from siscore_assets.core.imagery import grid

    scale = 2**zoom
    _, _, y0, y1 = grid.aoi_tile_range(aoi.geometry, zoom)
    lats = [  # row centres, north to south, as the land mask streams
        math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / scale))))
        for y in range(y0, y1 + 1)
    ]
    tiles = on_land = 0
    try:
        for (_, xs), land in zip(
            grid.aoi_tile_rows(aoi.geometry, zoom), land_mask.land_rows(lats), strict=True
        ):
            tiles += len(xs)
            on_land += int(land[land_mask.mask_col((xs + 0.5) / scale * 360.0 - 180.0)].sum())
    except land_mask.LandMaskError as exc:
        raise AoiError(str(exc)) from None
    return TileCount(tiles, on_land)


def check_tiles(count: TileCount, where: str, zoom: int) -> None:
    """AoiError for an AOI with no tile to score: too small, or all of it in the sea."""
    if count.tiles == 0:
        raise AoiError(f"{where}: the AOI touches no zoom-{zoom} tile")
    if count.on_land == 0:
        raise AoiError(
            f"{where}: the AOI lies in the sea: none of its {count.tiles:,} zoom-{zoom} tiles "
            "has its centre on land (GLOBE 1 km land mask); check its coordinates (lon/lat "
            "swapped?)"
        )


def entry_text(
    code: str, name: str, years: tuple[int, int], api: str, aoi_file: str, aoi: Aoi
) -> str:
    """The countries-file entry (two-space indent under ``countries:``)."""
    w, s, e, n = aoi.bbox
    return (
        f"  {code}:\n"
        f"    name: {json.dumps(name)}\n"
        f"    zoom: 14\n"
        f"    years: {{from: {years[0]}, to: {years[1]}}}\n"
        f"    bbox: [{w}, {s}, {e}, {n}]\n"
        f"    source:\n"
        f"      kind: stac\n"
        f"      api: {json.dumps(api)}\n"
        f"      aoi: {json.dumps(aoi_file)}\n"
        f"    # Stage 1 from the country's own tiles, trained on the labelling kit's merged\n"
        f"    # labels; add annotations, districts, proxies and covariates as they arrive\n"
        f"    # (docs/countries.md).\n"
        f"    pretrain: kit\n"
    )


def entry_indent(text: str) -> int:
    """The indent of the entries under ``countries:`` in a countries file (2 when it has none)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"countries:\s*(#.*)?", line.rstrip()):
            for nxt in lines[i + 1 :]:
                if nxt.strip() and not nxt.lstrip().startswith("#"):
                    return max(1, len(nxt) - len(nxt.lstrip(" ")))
    return 2


def reindent(entry: str, unit: int) -> str:
    """``entry`` (written with a two-space indent) with ``unit`` spaces per level instead."""
    out = []
    for line in entry.splitlines(keepends=True):
        spaces = len(line) - len(line.lstrip(" "))
        out.append(" " * (spaces // 2 * unit) + line[spaces:])
    return "".join(out)


def append_entry(target: Path, code: str, entry: str, template: str) -> None:
    """Append ``entry`` to the countries file ``target`` (created from ``template`` when absent),
    indented as the file's own entries are, after checking that the whole new file loads and
    that the new entry passes the check ``siscore countries`` runs; the file is replaced
    atomically.  An error names ``target`` and the line, never the temporary copy the check
    reads."""
    old = target.read_text(encoding="utf-8") if target.is_file() else template
    if not old.endswith("\n"):
        old += "\n"
    text = old + reindent(entry, entry_indent(old))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text, encoding="utf-8")
    try:
        try:
            reg = load_countries(tmp)
            if code in reg.countries:  # what `siscore countries` checks: the AOI file read
                check_countries(reg, [code])
        except CountriesFileError as exc:
            problem = exc.problem.replace(str(tmp), str(target))
            raise CountriesFileError(str(target), exc.line, problem) from None
        except CountryConfigError as exc:
            raise CountryConfigError(str(exc).replace(str(tmp), str(target))) from None
        if code not in reg.countries:
            raise CountryConfigError(
                f"{target}: 'countries:' is not the file's last section; add the entry by hand"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_aoi(aoi: Aoi, path: Path) -> None:
    """The dissolved lon/lat AOI as a one-feature GeoJSON file (what ``source.aoi`` reads)."""
    import shapely

    geometry = shapely.geometry.mapping(aoi.geometry)
    feature = {"type": "Feature", "properties": {}, "geometry": geometry}
    doc = {"type": "FeatureCollection", "features": [feature]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)
