"""``country_entry``: the AOI ``siscore country add`` reads and the entry it appends (found by
review: a self-intersecting AOI was accepted and written as an entry ``siscore countries`` then
refused)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon

from siscore_assets.core import country_entry as ce
from siscore_assets.core.countries import CountriesFileError, load_countries

PACKAGED = Path(__file__).resolve().parents[2] / "siscore_assets" / "config" / "countries.yaml"
#: A ring that crosses itself (a bow tie over the Mekong near Vientiane).
BOW = Polygon([(102.0, 17.8), (102.8, 18.4), (102.8, 17.8), (102.0, 18.1), (102.0, 17.8)])


def test_a_self_intersecting_aoi_is_refused_naming_the_feature(tmp_path):
    path = tmp_path / "bow.geojson"
    good = shapely.box(102.5, 17.8, 102.6, 17.9)
    gpd.GeoDataFrame(geometry=[good, BOW], crs=4326).to_file(path)
    with pytest.raises(ce.AoiError) as err:
        ce.read_aoi(path)
    message = str(err.value)
    assert message.startswith(f"{path}: feature 1: invalid polygon (Self-intersection"), message
    assert "\n" not in message


def test_a_valid_aoi_in_another_crs_still_reads(tmp_path):
    path = tmp_path / "utm.gpkg"
    box = shapely.box(127.3, 39.0, 127.4, 39.1)
    gpd.GeoDataFrame(geometry=[box], crs=4326).to_crs(32652).to_file(path)
    aoi = ce.read_aoi(path)
    assert aoi.geometry.is_valid and aoi.bbox == pytest.approx((127.3, 39.0, 127.4, 39.1), abs=1e-4)


def test_an_entry_the_check_refuses_is_not_appended(tmp_path):
    """The whole new entry is checked as ``siscore countries`` checks it (here its AOI file is
    missing), not only the schema; the error names the target, never the temporary copy."""
    target = tmp_path / "mine.yaml"
    template = PACKAGED.read_text(encoding="utf-8")
    aoi = ce.bbox_aoi("125.0,38.0,125.3,38.2")
    entry = ce.entry_text(
        "KSC", "KSC", (2016, 2016), "https://x.org", str(tmp_path / "no.geojson"), aoi
    )
    with pytest.raises(CountriesFileError) as err:
        ce.append_entry(target, "KSC", entry, template)
    message = str(err.value)
    assert message.startswith(f"{target}:") and "AOI file not found" in message, message
    assert ".tmp" not in message and not target.exists() and not list(tmp_path.glob(".*.tmp"))
    ce.write_aoi(aoi, tmp_path / "ksc.geojson")
    entry = ce.entry_text(
        "KSC", "KSC", (2016, 2016), "https://x.org", str(tmp_path / "ksc.geojson"), aoi
    )
    ce.append_entry(target, "KSC", entry, template)
    assert load_countries(target).get("KSC").source.aoi == str(tmp_path / "ksc.geojson")


def test_a_table_without_geometry_is_not_a_vector_layer(tmp_path):
    """A CSV reads as a plain DataFrame: it failed with "'DataFrame' object has no attribute
    'geometry'"."""
    path = tmp_path / "tiles.csv"
    path.write_text("tile_id,year,score\n14/13903/6163,2016,0.0\n")
    with pytest.raises(ce.AoiError) as err:
        ce.read_aoi(path)
    assert (
        str(err.value)
        == f"{path}: no geometry column: not a vector layer (GeoPackage, GeoJSON, ...)"
    )
