"""The outputs' STAC catalog: a collection per country, an item per year with the siScore COG,
the change COG, the quicklook and the GeoParquet export; projection, raster and file
extensions with true checksums and sizes; relative links, so a moved folder still opens; and
odc-stac (what users load STAC with) reads one year's siScore with the COG's values."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio

from siscore_assets.core.maps import export, rasters, stac_catalog
from siscore_assets.core.storage import warehouse as wh
from siscore_assets_tests.fixtures.web_warehouse import make_warehouse


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("stac") / "data"
    root.mkdir()
    db = make_warehouse(root)
    grid = wh.query(db, "SELECT * FROM siscore_grid ORDER BY year, y, x")
    rows = []
    for year in (2016, 2017):
        g = grid[grid["year"] == year]
        stem = root / "SYN" / "rasters" / f"siscore_{year}"
        tif = rasters.write_grid_geotiff(
            g,
            "score",
            stem.with_suffix(".tif"),
            description="s",
            units="siScore",
            mask_col="inhabited",
        )
        png = rasters.write_quicklook_png(
            g, "score", stem.with_suffix(".png"), title="s", mask_col="inhabited"
        )
        rows += [(year, "siscore", "geotiff", str(tif)), (year, "siscore", "png", str(png))]
    a, b = (grid[grid["year"] == y].set_index(["x", "y"]) for y in (2016, 2017))
    change = b[["country", "z", "tile_id"]].assign(delta=b["score"] - a["score"]).reset_index()
    ctif = rasters.write_grid_geotiff(
        change.dropna(), "delta", root / "SYN" / "rasters" / "change_2016_2017.tif"
    )
    files = pd.DataFrame(rows, columns=["year", "kind", "format", "path"]).assign(country="SYN")
    for year in (2016, 2017):
        wh.write(
            db,
            "siscore_raster_files",
            files[files["year"] == year],
            {"country": "SYN", "year": year},
        )
    wh.write(
        db,
        "change_raster_files",
        pd.DataFrame(
            [
                {
                    "country": "SYN",
                    "year": 2017,
                    "kind": "change_base",
                    "format": "geotiff",
                    "path": str(ctif),
                }
            ]
        ),
        {"country": "SYN", "year": 2017},
    )
    parquet = root / "SYN" / "exports" / "siscore_SYN.parquet"
    with wh.reader(db, ["siscore_grid"]) as conn:
        export.write_export(conn, "SYN", export.stored_years(conn, "SYN"), parquet, "geoparquet")
    report = stac_catalog.build_catalog(db, "SYN", root / "stac", parquet)
    return root, db, report


def test_collection_items_and_assets(catalog):
    root, _, report = catalog
    assert report.items == 2
    cat = pystac.Catalog.from_file(str(root / "stac" / "catalog.json"))
    coll = cat.get_child("SYN")
    assert isinstance(coll, pystac.Collection)
    items = {i.id: i for i in coll.get_items()}
    assert set(items) == {"SYN_2016", "SYN_2017"}
    assert set(items["SYN_2017"].assets) == {
        "siscore",
        "change_2016_2017",
        "quicklook",
        "geoparquet",
    }
    assert set(items["SYN_2016"].assets) == {"siscore", "quicklook", "geoparquet"}
    item = items["SYN_2017"]
    exts = " ".join(item.stac_extensions)
    assert "projection" in exts and "raster" in exts and "file" in exts
    cog = item.assets["siscore"]
    assert cog.media_type == pystac.MediaType.COG
    assert cog.extra_fields["proj:shape"] == [9, 9]
    assert cog.extra_fields["raster:bands"][0]["data_type"] == "float32"
    # NaN nodata is the extension's "nan": every file is strict JSON (found by review: a bare
    # NaN, which JSON.parse refuses)
    assert cog.extra_fields["raster:bands"][0]["nodata"] == "nan"
    import json

    for f in (root / "stac").rglob("*.json"):
        json.loads(f.read_text(), parse_constant=lambda c, f=f: pytest.fail(f"{f}: {c} in JSON"))
    path = cog.get_absolute_href()
    assert cog.extra_fields["file:size"] == __import__("os").path.getsize(path)
    assert cog.extra_fields["file:checksum"] == stac_catalog.multihash_sha256(
        __import__("pathlib").Path(path)
    )


def test_links_and_hrefs_are_relative_so_the_tree_moves(catalog, tmp_path):
    root, _, _ = catalog
    text = (root / "stac" / "SYN" / "SYN_2017" / "SYN_2017.json").read_text()
    assert str(root) not in text
    moved = tmp_path / "moved"
    shutil.copytree(root, moved)
    item = pystac.Item.from_file(str(moved / "stac" / "SYN" / "SYN_2017" / "SYN_2017.json"))
    assert item.assets["siscore"].get_absolute_href().startswith(str(moved))
    assert __import__("os").path.exists(item.assets["siscore"].get_absolute_href())


def test_odc_stac_loads_one_years_siscore(catalog):
    import odc.stac as odc_stac  # a declared dependency (pyproject); offline: local files

    root, _, _ = catalog
    cat = pystac.Catalog.from_file(str(root / "stac" / "catalog.json"))
    item = next(i for i in cat.get_items(recursive=True) if i.id == "SYN_2017")
    ds = odc_stac.load([item], bands=["siscore"], chunks=None)
    got = ds["siscore"].isel(time=0).to_numpy()
    with rasterio.open(item.assets["siscore"].get_absolute_href()) as src:
        want = src.read(1)
    assert got.shape == want.shape == (9, 9)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)])
    assert np.isfinite(got).sum() > 40


def test_rebuild_keeps_other_countries_and_refuses_nothing_to_publish(catalog, tmp_path):
    root, db, _ = catalog
    again = stac_catalog.build_catalog(db, "SYN", root / "stac")
    assert again.items == 2
    with pytest.raises(ValueError, match="no siscore_raster_files rows for XXX"):
        stac_catalog.build_catalog(db, "XXX", tmp_path / "stac")


def test_a_data_root_behind_a_symlink_keeps_asset_links_inside_the_tree(catalog, tmp_path):
    root, db, _ = catalog
    link = tmp_path / "link"
    link.symlink_to(root, target_is_directory=True)
    stac_catalog.build_catalog(db, "SYN", link / "stac_linked")
    items = list((link / "stac_linked" / "SYN").rglob("SYN_*.json"))
    assert len(items) == 2
    for path in items:
        item = pystac.Item.from_file(str(path))
        for asset in item.assets.values():
            href = asset.get_absolute_href() if asset.href.startswith("/") else asset.href
            assert not href.startswith("/"), href
            # read through the link, as a user who moved the tree would: it stays inside
            target = os.path.normpath(os.path.join(path.parent, href))
            assert target.startswith(str(link) + os.sep), (href, target)


def test_two_countries_built_at_once_both_stay_in_the_catalog(catalog, tmp_path):
    root, db, _ = catalog
    files = wh.query(db, "SELECT * FROM siscore_raster_files WHERE country = 'SYN'")
    for code in ("AAA", "BBB"):
        for year in (2016, 2017):
            part = files[files["year"] == year].assign(country=code)
            wh.write(db, "siscore_raster_files", part, {"country": code, "year": year})
    out = tmp_path / "stac"
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: stac_catalog.build_catalog(db, c, out), ["AAA", "BBB"]))
        cat = pystac.Catalog.from_file(str(out / "catalog.json"))
        assert sorted(c.id for c in cat.get_children()) == ["AAA", "BBB"]
