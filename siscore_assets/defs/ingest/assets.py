"""Ingest: the country's imagery as granules, grid patches, ground layers, districts, covariates."""


import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core import covariates as covariates_lib
from siscore_assets.core import districts as districts_lib
from siscore_assets.core import imagery, sources
from siscore_assets.core import tile_folder as tf
from siscore_assets.core.countries import GENERATED, CountryConfig, CountryConfigError
from siscore_assets.core.files import atomic_path

from ..common import OWNERS, country_only, country_year, image_md, not_configured, png_bytes
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "ingest"


def synthetic_edz_types() -> tuple[str, ...]:
    from siscore_assets.core.synthetic import EDZ_TYPES

    return tuple(EDZ_TYPES)


def _require_generated(country: CountryConfig, what: str, value: object) -> None:
    if value != GENERATED or not country.is_synthetic:
        raise CountryConfigError(
            f"country {country.code}: {what} {value!r} is not supported by source "
            f"'{country.source_kind}' yet (only synthetic countries generate their own {what})"
        )


def _layer_file(country: CountryConfig, what: str, value: object):
    """A configured layer file (GeoPackage / shapefile / GeoJSON), checked to exist."""
    from pathlib import Path

    path = Path(str(value))
    if not path.is_file():
        raise CountryConfigError(f"country {country.code}: {what} layer file not found: {path}")
    return path


def _tile_inventory(context: AssetExecutionContext, country: CountryConfig, year: int,
                    warehouse: Warehouse) -> MaterializeResult:
    """A tile folder's 'granules': every tile file of the year, georeferenced from its id."""
    folder = tf.tiles_dir(country) / str(year)
    files, problems = tf.list_year_tiles(folder, country.zoom)
    for prob in problems:
        context.log.warning(f"{country.code} {year}: {prob['problem']}")
    frame = pd.DataFrame([{
        "country": country.code, "year": year, "granule_id": f.path.stem, "path": str(f.path),
        "tile_x0": f.tile.x, "tile_y0": f.tile.y, "tiles_x": 1, "tiles_y": 1,
    } for f in files])
    if frame.empty:
        raise FileNotFoundError(f"{country.code} {year}: no tile files in {folder}")
    n = warehouse.write("granules", frame, {"country": country.code, "year": year})
    return MaterializeResult(metadata={
        "granules": n, "misnamed_files": len(problems), "folder": MetadataValue.path(str(folder)),
    })


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"rasterio", "geotiff"},
        description="The country's imagery for the year as north-up EPSG:3857 GeoTIFF scenes whose "
        "edges fall on zoom-14 tile edges (synthetic countries render theirs); for a tile-folder "
        "country, the inventory of its tile files (one row per file, georeferenced from its id).",
    )
    def granules(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        out_dir = settings.country_dir(country.code) / "granules" / str(year)
        if country.source_kind == "tile_folder":
            return _tile_inventory(context, country, year, warehouse)
        if not country.is_synthetic:
            raise CountryConfigError(f"country {country.code}: imagery source '{country.source_kind}' has no granule writer yet")
        world = sources.synthetic_country(country)
        spec = world.spec
        scene = world.render_year(year)
        infos = imagery.split_scene(scene, spec.z, spec.x0, spec.y0, spec.nx, spec.ny, spec.tile_px,
                                    sources.granule_tiles(country), out_dir)
        frame = pd.DataFrame([{
            "country": country.code, "year": year, "granule_id": g.granule_id, "path": str(g.path),
            "tile_x0": g.x0, "tile_y0": g.y0, "tiles_x": g.nx, "tiles_y": g.ny,
            "width_px": g.width_px, "height_px": g.height_px,
        } for g in infos])
        n = warehouse.write("granules", frame, {"country": country.code, "year": year})
        return MaterializeResult(metadata={
            "granules": n,
            "folder": MetadataValue.path(str(out_dir)),
            "scene": image_md(png_bytes(scene, 512), f"{country.code} {year}"),
        })

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, deps=[granules], kinds={"duckdb", "numpy"},
        description="Grid patches (one per zoom-14 tile) cut from the granules: a uint8 stack for the "
        "models and the `patches` table indexing every tile; blank, cloudy (share of near-white "
        "pixels >= source.max_cloud_fraction, default 0.15) and corrupt tiles are reported, not scored.",
        check_specs=[AssetCheckSpec("unique_tiles", asset="patches",
                                    description="each tile id appears once per country-year")],
    )
    def patches(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        if country.source_kind == "tile_folder":
            files, problems = tf.list_year_tiles(tf.tiles_dir(country) / str(year), country.zoom)
            index, stack = tf.cut_tile_folder(files, country.zoom, max_cloud=sources.max_cloud_fraction(country),
                                              problems=problems)
        else:
            granule_dir = settings.country_dir(country.code) / "granules" / str(year)
            paths = sorted(p for p in granule_dir.glob("*.tif") if not p.name.startswith("."))
            if not paths:
                raise FileNotFoundError(f"no granules in {granule_dir}: materialise 'granules' for {country.code}|{year} first")
            index, stack = imagery.cut_patches(paths, country.zoom, max_cloud=sources.max_cloud_fraction(country))
        bad = index[index["status"] != imagery.STATUS_OK]
        for row in bad.itertuples():
            context.log.warning(f"{country.code} {year}: tile {row.tile_id} {row.status}: {row.problem}")
        stack_path = settings.country_dir(country.code) / "patches" / f"{year}.npy"
        imagery.save_stack(stack, stack_path)
        index.insert(0, "year", year)
        index.insert(0, "country", country.code)
        index["stack_path"] = str(stack_path)
        n = warehouse.write("patches", index, {"country": country.code, "year": year})
        dupes = int(index.loc[index["x"] >= 0, "tile_id"].duplicated().sum())
        rng = np.random.default_rng(0)
        sample = stack[np.sort(rng.choice(len(stack), size=min(32, len(stack)), replace=False))] if len(stack) else stack
        return MaterializeResult(
            metadata={
                "tiles": n,
                "usable_tiles": int((index["status"] == imagery.STATUS_OK).sum()),
                "blank_tiles": int((index["status"] == imagery.STATUS_BLANK).sum()),
                "cloudy_tiles": int((index["status"] == imagery.STATUS_CLOUDY).sum()),
                "corrupt_granules_or_tiles": int((index["status"] == imagery.STATUS_CORRUPT).sum()),
                "tile_px": int(stack.shape[1]) if len(stack) else 0,
                "sample": image_md(png_bytes(imagery.contact_sheet(sample)), "sample patches"),
                **({"mosaic": image_md(png_bytes(tf.mosaic(index, stack), 640), f"{country.code} {year}")}
                   if country.source_kind == "tile_folder" else {}),
            },
            check_results=[AssetCheckResult(check_name="unique_tiles", passed=dupes == 0,
                                            severity=AssetCheckSeverity.ERROR,
                                            metadata={"duplicate_tile_ids": dupes})],
        )

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"duckdb"},
        description="Tile-level ground layers used only for validation (building floor area, "
        "population, nightlight): the `proxies` table, and the layer files under the data root.",
    )
    def proxies(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        if not country.has_layer("proxies"):
            return not_configured(country, "no proxies layer (proxies: none)")
        _require_generated(country, "proxies", country.proxies)
        truth = sources.synthetic_country(country).tile_truth(year)
        frame = truth.rename(columns={"development": "true_development"})
        layer_dir = settings.country_dir(country.code) / "layers" / str(year)
        layer_dir.mkdir(parents=True, exist_ok=True)
        csv_path = layer_dir / "tile_truth.csv"
        with atomic_path(csv_path) as tmp:
            frame.to_csv(tmp, index=False)
        frame.insert(0, "year", year)
        frame.insert(0, "country", country.code)
        n = warehouse.write("proxies", frame, {"country": country.code, "year": year})
        return MaterializeResult(metadata={
            "tiles": n, "layer_file": MetadataValue.path(str(csv_path)),
            "total_floor_area_km2": float(frame["building_floor_area_m2"].sum() / 1e6),
            "population": float(frame["population"].sum()),
            "lit_tiles": int((frame["nightlight"] > 0).sum()),
            "status": "ok",
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"geopandas", "duckdb"},
        description="District polygons (GeoPackage for GIS users; `districts` table with WKB geometry "
        "in EPSG:3857 and attributes for analysts). A configured layer file (GeoPackage, shapefile, "
        "GeoJSON; any CRS) is reprojected; `none`: recorded as not configured.",
    )
    def districts(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        if not country.has_layer("districts"):
            return not_configured(country, "no districts layer (districts: none)")
        if country.districts == GENERATED:
            _require_generated(country, "districts", country.districts)
            gdf = sources.synthetic_country(country).districts()
            source = "synthetic"
        else:  # any polygon layer, any CRS: stored in EPSG:3857 like the grid
            src = _layer_file(country, "districts", country.districts)
            gdf = districts_lib.read_polygons(src).to_crs(districts_lib.CRS_3857)
            if "district_id" not in gdf.columns:
                gdf.insert(0, "district_id", range(len(gdf)))
            if gdf["district_id"].duplicated().any():
                raise CountryConfigError(f"{src}: duplicate district_id values; dissolve first")
            if "area_km2" not in gdf.columns:
                gdf["area_km2"] = gdf.to_crs(districts_lib.CRS_EQUAL_AREA).geometry.area / 1e6
            source = str(src)
        path = settings.country_dir(country.code) / "layers" / "districts.gpkg"
        with atomic_path(path) as tmp:
            gdf.to_file(tmp, driver="GPKG", layer="districts")
        frame = pd.DataFrame(gdf.drop(columns="geometry"))
        frame["geometry_wkb"] = gdf.geometry.to_wkb()
        frame.insert(0, "country", country.code)
        n = warehouse.write("districts", frame, {"country": country.code})
        return MaterializeResult(metadata={"districts": n, "file": MetadataValue.path(str(path)),
                                           "source": source, "status": "ok"})

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"geopandas", "duckdb"},
        deps=["districts"],
        description="Tile covariates for the regression design, derived with geopandas from the "
        "points-of-interest layer and the districts: geodesic km to capital / provincial / county "
        "hubs, EDZ membership and one dummy per EDZ type, mine and nuclear-site adjacency (the tile "
        "or a neighbour contains one), district and province. `none` in the countries file: "
        "recorded as not configured.",
    )
    def covariates(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        if not country.has_layer("covariates"):
            return not_configured(country, "no covariates layer (covariates: none)")
        import geopandas as gpd

        if country.covariates == GENERATED:
            _require_generated(country, "covariates", country.covariates)
            world = sources.synthetic_country(country)
            poi = world.points_of_interest()
            tiles = pd.DataFrame([{"tile_id": t.tile_id, "z": t.z, "x": t.x, "y": t.y} for t in world.tiles])
            edz_types = synthetic_edz_types()
        else:  # a points-of-interest layer file; tiles from the imagery index
            poi = gpd.read_file(_layer_file(country, "covariates", country.covariates))
            idx = warehouse.query("SELECT DISTINCT tile_id, z, x, y FROM patches WHERE country = ? AND x >= 0 ORDER BY tile_id",
                                  [country.code])
            if idx.empty:
                raise FileNotFoundError(f"no patches for {country.code}: materialise 'patches' first")
            tiles, edz_types = idx, None
        dist = None
        if country.has_layer("districts"):
            d = warehouse.read("districts", {"country": country.code})
            if d.empty:
                raise FileNotFoundError(f"no districts for {country.code}: materialise 'districts' first")
            dist = gpd.GeoDataFrame(d.drop(columns=["geometry_wkb"]),
                                    geometry=gpd.GeoSeries.from_wkb(d["geometry_wkb"].map(bytes)), crs="EPSG:3857")
        frame = covariates_lib.derive_covariates(tiles, poi, dist, edz_types=edz_types)
        path = settings.country_dir(country.code) / "layers" / "points_of_interest.gpkg"
        with atomic_path(path) as tmp:
            poi.to_file(tmp, driver="GPKG", layer="points_of_interest")
        frame.insert(0, "country", country.code)
        n = warehouse.write("covariates", frame, {"country": country.code})
        return MaterializeResult(metadata={
            "tiles": n, "points_of_interest": len(poi), "file": MetadataValue.path(str(path)),
            "edz_tiles": int(frame["in_edz"].sum()), "mine_adjacent_tiles": int(frame["near_mine"].sum()),
            "nuclear_adjacent_tiles": int(frame["near_nuclear"].sum()),
            "tiles_outside_districts": int(frame["district_id"].isna().sum()) if "district_id" in frame else len(frame),
            "status": "ok",
        })

    return [granules, patches, proxies, districts, covariates]
