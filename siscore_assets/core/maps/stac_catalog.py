"""The outputs of a country as a STAC catalog (pystac), so odc-stac, stackstac or QGIS's STAC
browser find them without being told file paths: a collection per country, an item per year
with that year's siScore COG, the change COGs that end in that year, the quicklook and the
country's GeoParquet export as assets; the projection, raster and file (checksum, size)
extensions; relative links and hrefs, so the folder can be moved or uploaded as it is.

Layout: ``<root>/catalog.json``, ``<root>/<C>/collection.json``, ``<root>/<C>/<C>_<year>/…``;
asset hrefs point at the files where the pipeline wrote them (relative to the item)."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pystac
import rasterio
import rasterio.warp
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension

from siscore_assets.core.maps.web.sources import maybe_query
from siscore_assets.core.storage.catalog import store_lock

COG = pystac.MediaType.COG
GEOPARQUET = "application/vnd.apache.parquet"


def multihash_sha256(path: Path) -> str:
    """The file extension's checksum: a sha2-256 multihash (``1220`` + hex digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "1220" + h.hexdigest()


def _file_ext(asset: pystac.Asset, path: Path) -> None:
    ext = FileExtension.ext(asset, add_if_missing=True)
    ext.size = path.stat().st_size
    ext.checksum = multihash_sha256(path)


def raster_info(path: Path) -> dict:
    """What the projection and raster extensions say about a GeoTIFF, read from the file."""
    with rasterio.open(path) as src:
        info = {
            "epsg": src.crs.to_epsg() if src.crs else None,
            "shape": [src.height, src.width],
            "transform": list(src.transform)[:6],
            "bbox": list(src.bounds),
            "bbox_4326": list(rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)),
            "nodata": src.nodata,
            "dtype": src.dtypes[0],
            "units": (src.units or [None])[0],
        }
    return info


def _add_raster(item: pystac.Item, key: str, path: Path, title: str) -> dict:
    """A COG asset on ``item`` with projection, raster and file fields."""
    info = raster_info(path)
    asset = pystac.Asset(href=str(path), media_type=COG, title=title, roles=["data"])
    item.add_asset(key, asset)
    proj = ProjectionExtension.ext(asset, add_if_missing=True)
    proj.epsg, proj.shape, proj.transform = info["epsg"], info["shape"], info["transform"]
    proj.bbox = info["bbox"]
    nodata = info["nodata"]
    if isinstance(nodata, float) and math.isnan(nodata):
        nodata = NoDataStrings.NAN  # the raster extension's spelling: JSON has no NaN
    band = RasterBand.create(
        nodata=nodata, data_type=DataType(info["dtype"]), unit=info["units"] or None
    )
    RasterExtension.ext(asset, add_if_missing=True).bands = [band]
    _file_ext(asset, path)
    return info


def _open_catalog(root: Path, country: str) -> pystac.Catalog:
    """The catalog at ``root`` without ``country``'s collection (other countries kept), or a
    new one."""
    path = root / "catalog.json"
    if path.exists():
        catalog = pystac.Catalog.from_file(str(path))
        if catalog.get_child(country) is not None:
            catalog.remove_child(country)
        return catalog
    return pystac.Catalog(
        id="siscore", description="siScore outputs: development scores from satellite imagery"
    )


@dataclass
class CatalogReport:
    root: Path
    items: int
    assets: int


def _files(database: str | os.PathLike[str], country: str) -> pd.DataFrame:
    frames = [
        maybe_query(
            database,
            f"SELECT year, kind, format, path FROM {table} WHERE country = ?",
            [country],
        )
        for table in ("siscore_raster_files", "change_raster_files")
    ]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build_catalog(
    database: str | os.PathLike[str],
    country: str,
    root: str | os.PathLike[str],
    geoparquet: str | os.PathLike[str] | None = None,
) -> CatalogReport:
    """Write (replace) the country's collection under ``root`` from the raster-file tables;
    ``geoparquet``: the country's export, attached to the collection and to every item."""
    root = Path(root)
    files = _files(database, country)
    if files.empty:
        raise ValueError(
            f"no siscore_raster_files rows for {country}: materialise siscore_raster first"
        )
    with store_lock(root):  # two countries built at once must both stay in catalog.json
        return _build_locked(database, country, root, files, geoparquet)


def _build_locked(
    database: str | os.PathLike[str],
    country: str,
    root: Path,
    files: pd.DataFrame,
    geoparquet: str | os.PathLike[str] | None,
) -> CatalogReport:
    catalog = _open_catalog(root, country)
    items: list[pystac.Item] = []
    n_assets = 0
    for year, part in files.groupby("year", sort=True):
        tifs = part[part["format"] == "geotiff"]
        main = tifs[tifs["kind"] == "siscore"]
        if main.empty or not Path(main.iloc[0]["path"]).exists():
            continue
        info = raster_info(Path(main.iloc[0]["path"]))
        when = datetime(int(year), 7, 1, tzinfo=timezone.utc)
        w, s, e, n = info["bbox_4326"]
        item = pystac.Item(
            id=f"{country}_{int(year)}",
            geometry={
                "type": "Polygon",
                "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
            },
            bbox=[w, s, e, n],
            datetime=when,
            properties={"siscore:country": country, "siscore:year": int(year)},
        )
        ProjectionExtension.ext(item, add_if_missing=True).epsg = info["epsg"]
        _add_raster(item, "siscore", Path(main.iloc[0]["path"]), f"siScore {year}")
        for row in tifs[tifs["kind"] != "siscore"].itertuples(index=False):
            path = Path(row.path)
            if path.exists():
                _add_raster(item, path.stem, path, f"{path.stem} (change)")
        for row in part[part["format"] == "png"].itertuples(index=False):
            path = Path(row.path)
            if path.exists() and row.kind == "siscore":
                asset = pystac.Asset(
                    str(path),
                    media_type=pystac.MediaType.PNG,
                    title=f"quicklook {year}",
                    roles=["overview"],
                )
                item.add_asset("quicklook", asset)
                _file_ext(asset, path)
        if geoparquet is not None and Path(geoparquet).exists():
            asset = pystac.Asset(
                str(geoparquet),
                media_type=GEOPARQUET,
                title="grid polygons, every year",
                roles=["data"],
            )
            item.add_asset("geoparquet", asset)
            _file_ext(asset, Path(geoparquet))
        n_assets += len(item.assets)
        items.append(item)
    if not items:
        raise ValueError(f"no siScore COG on disk for {country}: materialise siscore_raster")
    boxes = [i.bbox for i in items]
    extent = pystac.Extent(
        pystac.SpatialExtent(
            [
                [
                    min(b[0] for b in boxes),
                    min(b[1] for b in boxes),
                    max(b[2] for b in boxes),
                    max(b[3] for b in boxes),
                ]
            ]
        ),
        pystac.TemporalExtent([[items[0].datetime, items[-1].datetime]]),
    )
    collection = pystac.Collection(
        id=country,
        description=f"siScore of {country}, one item per year",
        extent=extent,
        license="proprietary",
    )
    collection.add_items(items)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    for item in items:  # asset hrefs relative to the item, so the tree moves as one
        for asset in item.assets.values():
            asset.href = os.path.relpath(
                Path(asset.href).resolve(), Path(item.self_href).resolve().parent
            )  # both sides resolved: a data root behind a symlink still gives links inside
    catalog.make_all_asset_hrefs_relative()
    stale = root / country
    if stale.exists():  # items of years no longer configured must not linger
        import shutil

        shutil.rmtree(stale)
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return CatalogReport(root=root, items=len(items), assets=n_assets)
