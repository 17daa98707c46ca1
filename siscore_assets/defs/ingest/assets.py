"""Ingest: the country's imagery as granules and grid patches, ground layers, districts and
covariates."""

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

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

from siscore_assets.core.analysis import covariates as covariates_lib
from siscore_assets.core.analysis import districts as districts_lib
from siscore_assets.core.analysis import proxy_rasters, score_source
from siscore_assets.core.compute.memory import release_memory
from siscore_assets.core.countries import GENERATED, CountryConfig, CountryConfigError
from siscore_assets.core.imagery import granules as granules_lib
from siscore_assets.core.imagery import patch_index, preview, sources, tile_blocks
from siscore_assets.core.imagery import patches as patches_lib
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.files import atomic_path

from ..common.context import (
    OWNERS,
    country_only,
    country_year,
    imagery_not_configured,
    log_problems,
    log_rate,
    not_configured,
)
from ..common.data import district_layer, store_root, year_store
from ..common.metadata import image_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse
from . import stac

GROUP = "ingest"
#: Read by the next stage: blocking, checked before the rows are written.
UNIQUE_TILES = AssetCheckSpec(
    "unique_tiles",
    asset="patches",
    blocking=True,
    description="each tile id appears once per country-year",
)


def require_one_tile_size(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    year: int,
    files: Sequence[tf.TileFile],
) -> None:
    """Without ``source.store_px`` a tile-folder year is stored at its own tile size: one line
    naming both years when that is not the size of the country's other committed years' stores
    (Stage 3 would otherwise fail on them together, naming neither).  Years not ingested yet,
    or whose store cannot be read, are not compared."""
    px = tf.folder_tile_px(files) if sources.store_px(country) is None else None
    if px is None:  # one size set for every year, or nothing decodable to compare
        return
    for other in (y for y in country.years if y != year):
        try:
            _, stack = year_store(settings, warehouse, country.code, other)
        except (FileNotFoundError, RuntimeError, ValueError):  # RuntimeError: TileStoreError
            continue
        if len(stack) and int(stack.shape[1]) != px:
            theirs = int(stack.shape[1])
            raise CountryConfigError(
                f"{country.code} {year}: tiles are {px} px, {other}'s are {theirs} px: set "
                f"source.store_px (e.g. {theirs}) so every year is stored at one size"
            )


def cut_year(
    context: AssetExecutionContext,
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    year: int,
    year_folder: Path,
) -> tuple[tile_store.TileStore, Iterator[pd.DataFrame], dict]:
    """Cut a country-year's tiles into a new tile store under ``year_folder``: a tile folder block
    by block on the configured workers, a STAC country warped tile by tile, synthetic granules
    in memory.  Returns the store, the `patches` index in batches and the stage's rate (tile
    folder only)."""
    max_cloud = sources.max_cloud_fraction(country)
    if country.source_kind == "tile_folder":  # block by block, on the configured workers
        files, problems = tf.list_year_tiles(tf.tiles_dir(country) / str(year), country.zoom)
        require_one_tile_size(settings, warehouse, country, year, files)  # before any write
        workers, started = settings.worker_config(), time.perf_counter()
        stack, batches = tile_blocks.cut_tile_folder(
            files,
            problems,
            year_folder,
            z=country.zoom,
            max_cloud=max_cloud,
            store_px=sources.store_px(country),
            block_zoom=sources.block_zoom(country),
            workers=workers,
            log=context.log.info,
        )
        rate = log_rate(
            context,
            "patches",
            len(files),
            time.perf_counter() - started,
            workers.describe(len(files)),
        )
        del files, problems
        release_memory()  # the listing: not kept under the index's writing
        return stack, batches, rate
    if country.source_kind == stac.STAC:  # warped tile by tile, stored block by block
        index, stack, _ = stac.stac_patches(
            context, settings, country, year, max_cloud, year_folder, sources.store_px(country)
        )
        return stack, iter([index]), {}
    # synthetic granules: a small country's year, cut in memory; exactly the granules the
    # partition's `granules` rows list (never another configuration's files in the folder)
    granule_dir = settings.country_dir(country.code) / "granules" / str(year)
    listed = warehouse.read("granules", {"country": country.code, "year": year}, columns="path")
    paths = granules_lib.listed_granules(granule_dir, listed["path"] if len(listed) else [])
    if not paths:
        raise FileNotFoundError(
            f"no granules in {granule_dir}: materialise 'granules' for {country.code}|{year} first"
        )
    index, images = patches_lib.cut_patches(paths, country.zoom, max_cloud=max_cloud)
    stack = tile_blocks.store_stack(images, year_folder)
    del images
    return stack, iter([index]), {}


def synthetic_granules(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, year: int
) -> MaterializeResult:
    """A synthetic country's rendered year as granules: written aside and moved in, then the
    table, then the files of an earlier configuration (another grid, another granule size)
    removed, so the folder holds exactly what the table lists and never less."""
    out_dir = settings.country_dir(country.code) / "granules" / str(year)
    world = sources.synthetic_country(country)
    spec = world.spec
    scene = world.render_year(year)
    infos = granules_lib.replace_granules(
        out_dir,
        lambda folder: granules_lib.split_scene(
            scene, spec.z, spec.x0, spec.y0, spec.nx, spec.ny, spec.tile_px,
            sources.granule_tiles(country), folder,
        ),
    )  # fmt: skip
    frame = granules_lib.granule_table(infos, country.code, year)
    n = warehouse.write("granules", frame, {"country": country.code, "year": year})
    stale = granules_lib.remove_stale_granules(out_dir, [g.path for g in infos])
    return MaterializeResult(
        metadata={
            "granules": n,
            "stale_granules_removed": len(stale),
            "folder": MetadataValue.path(str(out_dir)),
            "scene": image_md(png_bytes(scene, 512), f"{country.code} {year}"),
        }
    )


def _grid_tiles(warehouse: Warehouse, country: CountryConfig, year: int | None = None):
    """The tiles a ground layer is sampled on (one year's, or every year's): the imagery index
    (`patches`), or an analysis-only country's score file."""
    if country.analysis_only:
        if year is None:
            return score_source.country_tiles(country)
        return score_source.country_year_scores(country, year)[["tile_id", "z", "x", "y"]]
    where, params = (
        ("AND year = ? ", [country.code, year]) if year is not None else ("", [country.code])
    )
    return warehouse.query(
        f"SELECT DISTINCT tile_id, z, x, y FROM patches WHERE country = ? {where}AND x >= 0 "
        "ORDER BY tile_id",
        params,
    )


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"rasterio", "geotiff"},
        deps=[p.same("stac_scenes")],
        description="The country's imagery for the year as north-up EPSG:3857 GeoTIFF scenes whose "
        "edges fall on zoom-14 tile edges (synthetic countries render theirs); for a tile-folder "
        "country, the inventory of its tile files (one row per file, georeferenced from its id); "
        "for a STAC country, each chosen scene (`stac_scenes`) and the tile block it covers.",
    )
    def granules(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if done := imagery_not_configured(warehouse, country, {"granules": keys}):
            return done[0]
        if country.source_kind == "tile_folder":
            folder = tf.tiles_dir(country) / str(year)
            files, problems = tf.tile_inventory(country, year)
            log_problems(
                context,
                f"{country.code} {year}: misnamed tile files",
                [p["problem"] for p in problems],
                "each a 'corrupt' row of `patches`",
            )
            with warehouse.spool("granules", keys) as rows:  # batch by batch, as `patches`
                for batch in tf.inventory_batches(files, country.code, year):
                    rows.append(batch)
                del files
                n = rows.commit()
            return MaterializeResult(
                metadata={
                    "granules": n,
                    "misnamed_files": len(problems),
                    "folder": MetadataValue.path(str(folder)),
                }
            )
        if country.source_kind == stac.STAC:
            n = warehouse.write("granules", stac.stac_granules(settings, country, year), keys)
            return MaterializeResult(metadata={"granules": n, "status": "ok"})
        if not country.is_synthetic:
            raise CountryConfigError(
                f"country {country.code}: imagery source '{country.source_kind}' has no granule "
                "writer yet"
            )
        return synthetic_granules(settings, warehouse, country, year)

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        deps=[granules],
        kinds={"duckdb", "numpy"},
        description="Grid patches (one per zoom-14 tile) cut from the granules: a tile store for "
        "the models (blocks of memory-mapped uint8 arrays, read by rows; a tile folder is cut "
        "block by block on the configured workers) and the `patches` table indexing every "
        "tile; blank, cloudy (share of near-white pixels >= source.max_cloud_fraction, default "
        "0.15) and corrupt tiles are reported, not scored. A STAC country's tiles are read from "
        "the chosen scenes' COGs, warped onto the grid (resumable).",
        check_specs=[UNIQUE_TILES],
    )
    def patches(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if done := imagery_not_configured(warehouse, country, {"patches": keys}, ["unique_tiles"]):
            return done[0]
        year_folder = store_root(settings, country.code, year)
        stack, batches, rate = cut_year(context, settings, warehouse, country, year, year_folder)
        with warehouse.spool("patches", keys) as rows:  # batch by batch: never whole in memory
            summary = patch_index.spool_index(
                rows, batches, country.code, year, str(stack.folder), context.log.warning
            )
            del batches
            check = AssetCheckResult(
                check_name="unique_tiles",
                passed=summary.duplicates == 0,
                severity=AssetCheckSeverity.ERROR,
                metadata={"duplicate_tile_ids": summary.duplicates},
            )
            if summary.duplicates:  # nothing is written: the next stage would score a tile twice
                return MaterializeResult(
                    metadata={"status": "rejected", "rows_written": 0}, check_results=[check]
                )
            n = rows.commit()
            placed = (
                rows.query(patches_lib.PLACED_TILES_SQL)
                if country.source_kind == "tile_folder"
                else None
            )
        release_memory()
        # the index names this store: earlier generations go
        removed = tile_store.remove_other_generations(year_folder, stack.folder)
        cache = (  # the read records only resume a killed read: the indexed store replaces them
            stac.release_cache(settings, country, stac.tile_cache(settings, country.code, year))
            if country.source_kind == stac.STAC
            else {}
        )
        sample = patch_index.sample_tiles(stack)
        mosaic = (
            {"mosaic": image_md(png_bytes(tf.mosaic(placed, stack), 640), f"{country.code} {year}")}
            if placed is not None
            else {}
        )
        return MaterializeResult(
            metadata={
                "tiles": n,
                **summary.status_metadata(),
                "tile_px": int(stack.shape[1]) if len(stack) else 0,
                "store": MetadataValue.path(str(stack.folder)),
                "store_blocks": len(stack.blocks),
                "earlier_stores_removed": len(removed),
                **cache,
                **rate,
                "sample": image_md(png_bytes(preview.contact_sheet(sample)), "sample patches"),
                **mosaic,
            },
            check_results=[check],
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb", "rasterio"},
        deps=[patches],
        description="Tile-level ground layers used for validation and data-guided POGs (building "
        "floor area, population, nightlight, ...): the `proxies` table. A `{name: raster}` "
        "mapping (any CRS; `{year}` in a path names one raster per year) gives each tile of "
        "`patches` the raster's mean over the tile's exact bounds (warped, nodata excluded); "
        "synthetic countries generate theirs; `none`: recorded as not configured.",
    )
    def proxies(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if not country.has_layer("proxies"):
            return not_configured(
                warehouse, country, "no proxies layer (proxies: none)", {"proxies": keys}
            )[0]
        if isinstance(country.proxies, dict):  # {name: raster file}, any CRS
            rasters = {
                name: country.layer_file("proxies", str(value).replace("{year}", str(year)))
                for name, value in country.proxies.items()
            }  # `{year}` in a path: one raster a year
            tiles = _grid_tiles(warehouse, country, year)
            if tiles.empty:
                raise FileNotFoundError(
                    f"no patches for {country.code}|{year}: materialise 'patches' first"
                )
            frame = proxy_rasters.proxy_table(rasters, tiles)
            frame.insert(0, "year", year)
            frame.insert(0, "country", country.code)
            n = warehouse.write("proxies", frame, keys)
            return MaterializeResult(
                metadata={
                    "tiles": n,
                    "status": "ok",
                    **{
                        f"layer_{name}": MetadataValue.path(str(path))
                        for name, path in rasters.items()
                    },
                    **{f"tiles_with_{name}": int(frame[name].notna().sum()) for name in rasters},
                }
            )
        country.require_generated("proxies", country.proxies)
        frame = (
            sources.synthetic_country(country)
            .tile_truth(year)
            .rename(columns={"development": "true_development"})
        )
        csv_path = settings.country_dir(country.code) / "layers" / str(year) / "tile_truth.csv"
        with atomic_path(csv_path) as tmp:
            frame.to_csv(tmp, index=False)
        frame.insert(0, "year", year)
        frame.insert(0, "country", country.code)
        n = warehouse.write("proxies", frame, keys)
        return MaterializeResult(
            metadata={
                "tiles": n,
                "layer_file": MetadataValue.path(str(csv_path)),
                "total_floor_area_km2": float(frame["building_floor_area_m2"].sum() / 1e6),
                "population": float(frame["population"].sum()),
                "lit_tiles": int((frame["nightlight"] > 0).sum()),
                "status": "ok",
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"geopandas", "duckdb"},
        description="District polygons (GeoPackage for GIS users; `districts` table with WKB "
        "geometry in EPSG:3857 and attributes for analysts). A configured layer file (GeoPackage, "
        "shapefile, GeoJSON; any CRS) is reprojected; `none`: recorded as not configured.",
    )
    def districts(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        if not country.has_layer("districts"):
            return not_configured(
                warehouse, country, "no districts layer (districts: none)", {"districts": keys}
            )[0]
        if country.districts == GENERATED:
            country.require_generated("districts", country.districts)
            gdf, source = sources.synthetic_country(country).districts(), "synthetic"
        else:  # any polygon layer, any CRS: stored in EPSG:3857 like the grid
            src = country.layer_file("districts")
            gdf, source = (
                districts_lib.district_layer_from_file(src, country.layer_options("districts")),
                str(src),
            )
        path = settings.country_dir(country.code) / "layers" / "districts.gpkg"
        with atomic_path(path) as tmp:  # `geometry`, the one geometry column name everywhere
            gdf.to_file(tmp, driver="GPKG", layer="districts", GEOMETRY_NAME="geometry")
        frame = districts_lib.district_table(gdf, country.code)
        if "district_name" in frame.columns and "name" not in frame.columns:
            frame["name"] = frame["district_name"]  # where the analysts' queries read it
        n = warehouse.write("districts", frame, keys)
        return MaterializeResult(
            metadata={
                "districts": n,
                "file": MetadataValue.path(str(path)),
                "source": source,
                "status": "ok",
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"geopandas", "duckdb"},
        deps=[p.same("districts"), p.from_years("patches")],
        description="Tile covariates for the regression design, derived with geopandas from the "
        "points-of-interest layer and the districts: geodesic km to capital / provincial / county "
        "hubs, EDZ membership and one dummy per EDZ type, mine and nuclear-site adjacency (the "
        "tile or a neighbour contains one), district and province. A points file takes its tiles "
        "from `patches`. `none` in the countries file: recorded as not configured.",
    )
    def covariates(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        if not country.has_layer("covariates"):
            return not_configured(
                warehouse, country, "no covariates layer (covariates: none)", {"covariates": keys}
            )[0]
        if country.covariates == GENERATED:
            country.require_generated("covariates", country.covariates)
            world = sources.synthetic_country(country)
            poi = world.points_of_interest()
            tiles = pd.DataFrame(
                [{"tile_id": t.tile_id, "z": t.z, "x": t.x, "y": t.y} for t in world.tiles]
            )
            edz_types = tuple(sources.synthetic_edz_types())
        else:  # points-of-interest layer file(s); tiles from the imagery index
            if isinstance(country.covariates, dict):  # one file per kind (ports, zones, mines, ...)
                poi = covariates_lib.read_point_layers(
                    country.covariates, lambda value: country.layer_file("covariates", value)
                )
            else:
                poi = covariates_lib.read_layer(
                    country.layer_file("covariates"),
                    covariates_lib.ZONE_GEOMETRIES,
                    "points-of-interest",
                )
            tiles = _grid_tiles(warehouse, country)
            if tiles.empty:
                raise FileNotFoundError(
                    f"no patches for {country.code}: materialise 'patches' first"
                )
            edz_types = None
        dist = district_layer(warehouse, country.code) if country.has_layer("districts") else None
        frame = covariates_lib.derive_covariates(tiles, poi, dist, edz_types=edz_types)
        path = settings.country_dir(country.code) / "layers" / "points_of_interest.gpkg"
        with atomic_path(path) as tmp:
            poi.to_file(tmp, driver="GPKG", layer="points_of_interest", GEOMETRY_NAME="geometry")
        frame.insert(0, "country", country.code)
        n = warehouse.write("covariates", frame, keys)
        return MaterializeResult(
            metadata={
                "tiles": n,
                "points_of_interest": len(poi),
                "file": MetadataValue.path(str(path)),
                "edz_tiles": int(frame["in_edz"].sum()),
                "mine_adjacent_tiles": int(frame["near_mine"].sum()),
                "nuclear_adjacent_tiles": int(frame["near_nuclear"].sum()),
                "tiles_outside_districts": int(frame["district_id"].isna().sum())
                if "district_id" in frame
                else len(frame),
                "status": "ok",
            }
        )

    return [granules, patches, proxies, districts, covariates]
