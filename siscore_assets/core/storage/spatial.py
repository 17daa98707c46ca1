"""DuckDB spatial, offline: the extension comes from the PyPI package ``duckdb-ext-spatial``
(built for the pinned DuckDB version) and is loaded from that package's folder -- DuckDB never
tries to download it.

For analysts, ``siscore sql`` (``catalog.session``) opens the warehouse where it is now -- a data
folder copied or moved elsewhere works as it is -- with the extension loaded and two session
views, ``tile_polygons`` (every tile of ``patches`` as its EPSG:3857 polygon) and
``district_geometries`` (``districts`` with their WKB as geometry); the geometry column is
``geometry`` everywhere, as in the GeoParquet export and the layer GeoPackages.  The catalog
refresh also writes ``<warehouse>_spatial.sql`` beside the catalog for the DuckDB shell; it names
no data path (tables by name only), so it travels with the folder.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

import duckdb

PACKAGE = "duckdb-ext-spatial"

#: Session views over the warehouse's tables (created only when the table exists).
VIEWS = {
    "patches": (
        "CREATE OR REPLACE TEMP VIEW tile_polygons AS "
        "SELECT country, year, tile_id, z, x, y, status, "
        'ST_MakeEnvelope("left", bottom, "right", top) AS geometry FROM patches'
    ),
    "districts": (
        "CREATE OR REPLACE TEMP VIEW district_geometries AS SELECT * EXCLUDE (geometry_wkb), "
        "ST_GeomFromWKB(geometry_wkb) AS geometry FROM districts"
    ),
}


class SpatialUnavailableError(RuntimeError):
    """The extension package is not installed (or not for this DuckDB version)."""


def extension_directory() -> Path:
    """The installed package's ``extensions`` folder.

    It holds ``v<duckdb>/<platform>/spatial.duckdb_extension``.
    """
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise SpatialUnavailableError(
            f"pip install '{PACKAGE}' for DuckDB {duckdb.__version__}"
        ) from exc
    folder = Path(str(dist.locate_file("duckdb_ext/extensions"))).resolve()
    if not any(folder.glob(f"v{duckdb.__version__}/*/spatial.duckdb_extension")):
        raise SpatialUnavailableError(
            f"{PACKAGE} {dist.version} has no build for DuckDB {duckdb.__version__} under {folder}"
        )
    return folder


def load(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Load spatial into ``conn`` from the package folder (no network)."""
    conn.execute(f"SET extension_directory = '{extension_directory()}'")
    conn.execute("SET autoinstall_known_extensions = false")
    conn.execute("LOAD spatial")
    return conn


def add_views(conn: duckdb.DuckDBPyConnection, tables: set[str]) -> list[str]:
    """``tile_polygons`` / ``district_geometries`` as session views on a spatial connection."""
    made = []
    for table, sql in VIEWS.items():
        if table in tables:
            conn.execute(sql)
            made.append(sql.split(" AS ", 1)[0].rsplit(" ", 1)[1])
    return made


#: The one name of a geometry column (spatial views, GeoParquet, GeoPackages).
GEOMETRY = "geometry"


def init_file(database: str | os.PathLike[str]) -> Path:
    path = Path(database)
    return path.with_name(f"{path.stem}_spatial.sql")


def write_init_file(database: str | os.PathLike[str], root: Path) -> Path | None:
    """The DuckDB CLI init script that loads spatial and adds the session views (none when the
    extension package is missing)."""
    try:
        folder = extension_directory()
    except SpatialUnavailableError:
        return None
    tables = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    lines = [
        "-- written by siscore (storage/spatial.py): "
        "duckdb <warehouse> -readonly -init <this file>",
        f"SET extension_directory = '{folder}';",
        "SET autoinstall_known_extensions = false;",
        "LOAD spatial;",
    ]
    lines += [sql + ";" for table, sql in VIEWS.items() if table in tables]
    path = init_file(database)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
