"""The wide grid layer behind `siscore export`: columns, changes, polygons, duplicates refused."""

from __future__ import annotations

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.maps.export import LAYER, change_pairs, stored_years, write_export


def _long() -> pd.DataFrame:
    rows = []
    for year, scores in (
        (2016, [0.1, 0.2, 0.3]),
        (2017, [0.4, 0.5, None]),
        (2019, [0.2, 0.9, 0.3]),
    ):
        for x, s in zip((5, 6, 7), scores):
            if s is not None:
                rows.append(
                    {
                        "year": year,
                        "tile_id": Tile(14, 8000 + x, 6000).tile_id,
                        "z": 14,
                        "x": 8000 + x,
                        "y": 6000,
                        "score": s,
                        "inhabited": s > 0.15,
                    }
                )
    return pd.DataFrame(rows)


def test_change_pairs():
    assert change_pairs([2019, 2016, 2017, 2018]) == [
        (2016, 2017),
        (2017, 2018),
        (2018, 2019),
        (2016, 2019),
    ]
    assert change_pairs([2016, 2017]) == [(2016, 2017)]
    assert change_pairs([2016]) == []


def _export(long: pd.DataFrame, path, fmt: str = "gpkg") -> gpd.GeoDataFrame:
    with duckdb.connect() as conn:
        conn.register("siscore_grid", long.assign(country="SYN"))
        years = stored_years(conn, "SYN")
        write_export(conn, "SYN", years, path, fmt, batch_rows=1)  # a band per grid row
    return gpd.read_file(path, layer=LAYER) if fmt == "gpkg" else gpd.read_parquet(path)


def test_layer_columns_changes_and_polygons(tmp_path):
    wide = _export(_long(), tmp_path / "g.gpkg")
    assert list(wide["x"]) == [8005, 8006, 8007]
    assert {
        "score_2016",
        "score_2017",
        "score_2019",
        "inhabited_2017",
        "change_2016_2017",
        "change_2017_2019",
        "change_2016_2019",
    } <= set(wide.columns)
    np.testing.assert_allclose(wide["change_2016_2019"], [0.1, 0.7, 0.0], atol=1e-12)
    assert np.isnan(wide.loc[2, "change_2016_2017"]) and np.isnan(wide.loc[2, "score_2017"])
    assert not wide.loc[0, "inhabited_2016"] and wide.loc[1, "inhabited_2016"]
    assert wide.crs.to_epsg() == 3857
    np.testing.assert_allclose(
        wide.geometry.iloc[1].bounds, Tile(14, 8006, 6000).bounds_3857(), atol=1e-6
    )
    again = _export(_long(), tmp_path / "g.parquet", "geoparquet")
    cols = [c for c in wide.columns if c.startswith(("score_", "change_"))]  # GPKG: no NA bool
    pd.testing.assert_frame_equal(pd.DataFrame(again[cols]), pd.DataFrame(wide[cols]))


def test_export_refuses_no_years_and_duplicates(tmp_path):
    with duckdb.connect() as conn, pytest.raises(ValueError, match="no siscore_grid rows"):
        write_export(conn, "SYN", [], tmp_path / "e.gpkg", "gpkg")
    df = _long()
    with pytest.raises(ValueError, match="duplicate"):
        _export(pd.concat([df, df.head(1)]), tmp_path / "d.gpkg")
    assert not (tmp_path / "d.gpkg").exists()  # nothing half-written
