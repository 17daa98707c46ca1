"""Ingest from a STAC API: which scene each MGRS granule uses (`stac_scenes`), and the granules /
patches steps of a STAC country (dispatched to from `assets.py`)."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core.countries import PROJECT_ROOT, CountryConfig
from siscore_assets.core.imagery import sources
from siscore_assets.core.imagery.stac import granule_patches as granule_lib
from siscore_assets.core.imagery.stac import ingest as stac_ingest
from siscore_assets.core.imagery.stac import warp
from siscore_assets.core.imagery.stac.config import StacSource, load_aoi, parse_stac_source
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.tile_store import TileStore

from ..common.context import OWNERS, country_year, log_problems, not_configured
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "ingest"
STAC = "stac"


def stac_config(country: CountryConfig, settings: SiscoreSettings) -> StacSource:
    where = f"{settings.countries_file or 'countries file'}: country {country.code}"
    return parse_stac_source(country.source, where, bbox=country.bbox)


def selection_path(settings: SiscoreSettings, code: str, year: int):
    return settings.country_dir(code) / "granules" / str(year) / "stac_selection.json"


def stac_granules(settings: SiscoreSettings, country: CountryConfig, year: int) -> pd.DataFrame:
    """The `granules` rows of a STAC country-year: each chosen scene and the tile block it
    covers."""
    cfg = stac_config(country, settings)
    sel = stac_ingest.load_selection(selection_path(settings, country.code, year))
    frame = warp.granule_rows(
        stac_ingest.plans_for(sel, country.zoom), list(sel.chosen), cfg.tile_px
    )
    frame.insert(0, "year", year)
    frame.insert(0, "country", country.code)
    return frame


def tile_cache(settings: SiscoreSettings, code: str, year: int) -> Path:
    """Where a STAC country-year's per-tile read records live (the read's resume cache)."""
    return settings.country_dir(code) / "stac_tiles" / str(year)


def release_cache(settings: SiscoreSettings, country: CountryConfig, cache: Path) -> dict:
    """Once the year's store is indexed: delete its read records unless
    ``source.keep_tile_cache``; the metadata saying what was freed or kept."""
    if stac_config(country, settings).keep_tile_cache:
        return {"tile_cache": MetadataValue.path(str(cache))}
    freed = warp.remove_records(cache)
    return {
        "tile_cache_files_removed": freed["files"],
        "tile_cache_mb_freed": round(freed["bytes"] / 1e6, 3),
    }


def stac_patches(
    context: AssetExecutionContext,
    settings: SiscoreSettings,
    country: CountryConfig,
    year: int,
    max_cloud: float,
    store_root: Path,
    store_px: int | None,
) -> tuple[pd.DataFrame, TileStore, dict[str, int]]:
    """Read the chosen scenes onto the grid (resuming from the tile cache) into a tile store under
    ``store_root``: (index, store, counts)."""
    cfg = stac_config(country, settings)
    sel = stac_ingest.load_selection(selection_path(settings, country.code, year))
    cache = tile_cache(settings, country.code, year)
    index, stack, stats = stac_ingest.read_year(
        cfg, sel, country.zoom, cache, max_cloud=max_cloud, store_root=store_root, store_px=store_px
    )
    context.log.info(
        f"{country.code} {year}: {stats['tiles_read']} tile(s) read, {stats['tiles_cached']} "
        f"already finished (cache {cache})"
    )
    return index, stack, stats


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"stac", "duckdb"},
        description="For a STAC imagery source: every Sentinel-2 L2A scene over the AOI in the "
        "year's season window, and per MGRS granule the one chosen (scene cloud cover limit, then "
        "unusable share inside the AOI, 1 - clear share by SCL, then date closest to the season "
        "centre) with each runner-up's reason; table `stac_scenes`, and the selection file the "
        "granules / patches steps read. Other sources: recorded as not configured.",
    )
    def stac_scenes(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if country.source_kind != STAC:
            return not_configured(
                warehouse,
                country,
                f"imagery source is {country.source_kind}, not stac",
                {"stac_scenes": keys},
            )[0]
        cfg = stac_config(country, settings)
        aoi = load_aoi(cfg, base=PROJECT_ROOT)
        table, sel = stac_ingest.select_year(cfg, aoi, year, z=country.zoom)
        log_problems(
            context, f"{country.code} {year}: scenes skipped", list(sel.skipped), "`stac_scenes`"
        )
        path = selection_path(settings, country.code, year)
        stac_ingest.save_selection(sel, path)
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        n = warehouse.write("stac_scenes", table, keys)
        return MaterializeResult(
            metadata={
                "scenes": n,
                "granules_chosen": len(sel.chosen),
                "skipped": MetadataValue.text("\n".join(sel.skipped) or "none"),
                "selection": MetadataValue.path(str(path)),
                "api": cfg.api,
                "status": "ok",
            }
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"stac", "numpy", "duckdb"},
        deps=[stac_scenes],
        description="The reproduction's granule patching, beside the grid "
        "(`source.granule_patches`): each chosen scene's MGRS granule cut into per_side x "
        "per_side patches of px pixels (32 x 343 px by default), ids `granule/row/col`, windows "
        "of the granule's own 10 m pixel grid in its UTM CRS (no reprojection; harmonised and "
        "stretched like grid tiles); only patches touching the AOI. Usable patches go into their "
        "own tile store; table `granule_patches` (UTM bounds, EPSG, status and reason of every "
        "patch). Resumable. Off: recorded as not configured.",
    )
    def granule_patches(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        cfg = stac_config(country, settings) if country.source_kind == STAC else None
        if cfg is None or cfg.granule_patches is None:
            return not_configured(
                warehouse,
                country,
                "no granule patching (source.granule_patches is off)",
                {"granule_patches": keys},
            )[0]
        sel = stac_ingest.load_selection(selection_path(settings, country.code, year))
        root = granule_store_root(settings, country.code, year)
        index, store, stats = granule_lib.read_granule_patches(
            cfg,
            list(sel.chosen),
            sel.aoi_shape,
            patch_cache(settings, country.code, year),
            root,
            max_cloud=sources.max_cloud_fraction(country),
            store_px=sources.store_px(country),
        )
        bad = index[index["status"] != "ok"]
        log_problems(
            context,
            f"{country.code} {year}: granule patches not scored",
            [f"{t}: {why}" for t, why in zip(bad["tile_id"], bad["problem"])],
            "`granule_patches`",
        )
        index.insert(0, "year", year)
        index.insert(0, "country", country.code)
        index["stack_path"] = str(store.folder)
        n = warehouse.write("granule_patches", index, keys)
        removed = tile_store.remove_other_generations(
            root, store.folder
        )  # the table names this one
        cache = release_cache(settings, country, patch_cache(settings, country.code, year))
        per_side, px = cfg.granule_patches
        return MaterializeResult(
            metadata={
                "patches": n,
                "usable_patches": int((index["status"] == "ok").sum()),
                "per_side": per_side,
                "patch_px": px,
                "earlier_stores_removed": len(removed),
                "store": MetadataValue.path(str(store.folder)),
                **{k: int(v) for k, v in stats.items()},
                **cache,
                "status": "ok",
            }
        )

    return [stac_scenes, granule_patches]


def patch_cache(settings: SiscoreSettings, code: str, year: int) -> Path:
    """Where a STAC country-year's granule-patch read records live (their resume cache)."""
    return settings.country_dir(code) / "stac_patches" / str(year)


def granule_store_root(settings: SiscoreSettings, code: str, year: int) -> Path:
    """Where a country-year's granule-patch stores live (apart from the grid's tile stores)."""
    return settings.country_dir(code) / "granule_tiles" / str(year)
