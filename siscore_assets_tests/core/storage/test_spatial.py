"""DuckDB spatial offline: tile polygons and district geometries queryable with ST_* from the
analysts' catalog, through the init file the catalog refresh writes."""

import duckdb
import pandas as pd
import pytest
import shapely

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.storage import spatial, warehouse


def test_tile_polygons_and_districts_with_st_functions(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    tiles = [Tile(14, 13920 + i, 6180) for i in range(3)]
    patches = pd.DataFrame(
        [
            {
                "country": "SYN",
                "year": 2016,
                "tile_id": t.tile_id,
                "z": t.z,
                "x": t.x,
                "y": t.y,
                "status": "ok",
                **dict(zip(("left", "bottom", "right", "top"), t.bounds_3857())),
            }
            for t in tiles
        ]
    )
    warehouse.write(db, "patches", patches, {"country": "SYN", "year": 2016})
    left, bottom, right, top = tiles[0].bounds_3857()
    district = shapely.box(left, bottom, right + (right - left), top)  # covers the first two tiles
    warehouse.write(
        db,
        "districts",
        pd.DataFrame(
            {
                "country": ["SYN"],
                "district_id": [1],
                "name": ["d1"],
                "geometry_wkb": [shapely.to_wkb(district)],
            }
        ),
        {"country": "SYN"},
    )
    init = spatial.init_file(db)
    assert init.is_file()
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET autoinstall_known_extensions = false")
        script = "\n".join(ln for ln in init.read_text().splitlines() if not ln.startswith("--"))
        for stmt in script.split(";\n"):
            if stmt.strip():
                conn.execute(stmt)
        assert conn.execute("SELECT sum(ST_Area(geometry)) FROM tile_polygons").fetchone()[
            0
        ] == pytest.approx(3 * (right - left) * (top - bottom))
        inside = conn.execute(
            "SELECT count(*) FROM tile_polygons t JOIN district_geometries d "
            "ON ST_Within(ST_Centroid(t.geometry), d.geometry)"
        ).fetchone()[0]
    assert inside == 2


def test_load_uses_the_package_folder(tmp_path):
    folder = spatial.extension_directory()
    assert any(folder.glob(f"v{duckdb.__version__}/*/spatial.duckdb_extension"))
    with duckdb.connect() as conn:
        spatial.load(conn)
        assert conn.execute("SELECT ST_AsText(ST_Point(1, 2))").fetchone()[0] == "POINT (1 2)"
