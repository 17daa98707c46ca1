"""`web_map` and `stac_catalog` as Dagster assets on a warehouse filled directly: the site and
the catalog land under the data root, and the asset page shows the year's map and the
validation chart."""

from __future__ import annotations

import pystac
import pytest

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.fixtures.definitions import materialize_assets
from siscore_assets_tests.fixtures.web_warehouse import make_warehouse


@pytest.fixture
def defs_and_root(tiny_countries, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    db = make_warehouse(data)
    defs = build_definitions(
        load_countries(tiny_countries),
        data_root=str(data),
        countries_file=str(tiny_countries),
        warehouse_path=str(db),
    )
    return defs, data


def test_web_map_and_stac_catalog_assets(defs_and_root):
    defs, data = defs_and_root
    for year in (2016, 2017):
        materialize_assets(defs, country_year_key("SYN", year), "siscore_raster", "siscore_change")
    result = materialize_assets(defs, "SYN", "web_map", "stac_catalog")
    meta = result.asset_materializations_for_node("web_map")[0].metadata
    assert (data / "SYN" / "web" / "index.html").is_file()
    assert (data / "SYN" / "web" / "country.html").is_file()
    assert meta["tiles"].value == 81 and meta["years"].value == [2016, 2017]
    assert "data:image/png;base64," in meta["map_thumbnail"].value
    assert "data:image/png;base64," in meta["validation_chart"].value
    smeta = result.asset_materializations_for_node("stac_catalog")[0].metadata
    assert smeta["items"].value == 2
    cat = pystac.Catalog.from_file(str(data / "stac" / "catalog.json"))
    item = next(i for i in cat.get_items(recursive=True) if i.id == "SYN_2017")
    assert {"siscore", "quicklook", "geoparquet"} <= set(item.assets)
    assert any(k.startswith("change_") for k in item.assets)
    assert (data / "SYN" / "exports" / "siscore_SYN.parquet").is_file()


def test_web_map_shows_only_the_configured_years(defs_and_root):
    """A year the countries file no longer has (its rows still in the warehouse) is left out of
    the map, as `siscore map` and `siscore export` leave it out."""
    from siscore_assets.core.storage import warehouse as wh

    defs, data = defs_and_root
    db = defs.resources["warehouse"].database
    old = wh.read(db, "siscore_grid", {"country": "SYN", "year": 2016}).assign(year=2015)
    wh.write(db, "siscore_grid", old, {"country": "SYN", "year": 2015})
    result = materialize_assets(defs, "SYN", "web_map")
    meta = result.asset_materializations_for_node("web_map")[0].metadata
    assert meta["years"].value == [2016, 2017]
    assert "2015" not in (data / "SYN" / "web" / "country.html").read_text()


def test_web_map_refuses_years_two_scorers_made(defs_and_root):
    """The map shows the change between any two years: never between two models' scores."""
    from siscore_assets.core.storage import warehouse as wh

    defs, _ = defs_and_root
    db = defs.resources["warehouse"].database
    for year, made_by in ((2016, "0123456789abcdef"), (2017, "fedcba9876543210")):
        grid = wh.read(db, "siscore_grid", {"country": "SYN", "year": year})
        wh.write(db, "siscore_grid", grid.assign(scorer=made_by), {"country": "SYN", "year": year})
    with pytest.raises(Exception, match="were scored by different scorers"):
        materialize_assets(defs, "SYN", "web_map")
