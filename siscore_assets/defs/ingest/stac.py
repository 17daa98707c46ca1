"""Ingest from a STAC API: which scene each MGRS granule uses (`stac_scenes`), and the granules /
patches steps of a STAC country (dispatched to from `assets.py`)."""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from siscore_assets.core.countries import PROJECT_ROOT, CountryConfig
from siscore_assets.core.imagery.stac import ingest as stac_ingest
from siscore_assets.core.imagery.stac import warp
from siscore_assets.core.imagery.stac.config import StacSource, load_aoi, parse_stac_source
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
    """The `granules` rows of a STAC country-year: each chosen scene and the tile block it covers."""
    cfg = stac_config(country, settings)
    sel = stac_ingest.load_selection(selection_path(settings, country.code, year))
    frame = warp.granule_rows(stac_ingest.plans_for(sel, country.zoom), list(sel.chosen), cfg.tile_px)
    frame.insert(0, "year", year)
    frame.insert(0, "country", country.code)
    return frame


def stac_patches(context: AssetExecutionContext, settings: SiscoreSettings, country: CountryConfig, year: int,
                 max_cloud: float, store_root: Path, store_px: int | None
                 ) -> tuple[pd.DataFrame, TileStore, dict[str, int]]:
    """Read the chosen scenes onto the grid (resuming from the tile cache) into a tile store under
    ``store_root``: (index, store, counts)."""
    cfg = stac_config(country, settings)
    sel = stac_ingest.load_selection(selection_path(settings, country.code, year))
    cache = settings.country_dir(country.code) / "stac_tiles" / str(year)
    index, stack, stats = stac_ingest.read_year(cfg, sel, country.zoom, cache, max_cloud=max_cloud,
                                                store_root=store_root, store_px=store_px)
    context.log.info(f"{country.code} {year}: {stats['tiles_read']} tile(s) read, {stats['tiles_cached']} "
                     f"already finished (cache {cache})")
    return index, stack, stats


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"stac", "duckdb"},
        description="For a STAC imagery source: every Sentinel-2 L2A scene over the AOI in the year's "
        "season window, and per MGRS granule the one chosen (scene cloud cover limit, then SCL cloud + "
        "no-data share inside the AOI, then date closest to the season centre) with each runner-up's "
        "reason; table `stac_scenes`, and the selection file the granules / patches steps read. "
        "Other sources: recorded as not configured.",
    )
    def stac_scenes(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if country.source_kind != STAC:
            return not_configured(warehouse, country, f"imagery source is {country.source_kind}, not stac",
                                  {"stac_scenes": keys})[0]
        cfg = stac_config(country, settings)
        aoi = load_aoi(cfg, base=PROJECT_ROOT)
        table, sel = stac_ingest.select_year(cfg, aoi, year)
        log_problems(context, f"{country.code} {year}: scenes skipped", list(sel.skipped), "`stac_scenes`")
        path = selection_path(settings, country.code, year)
        stac_ingest.save_selection(sel, path)
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        n = warehouse.write("stac_scenes", table, keys)
        return MaterializeResult(metadata={
            "scenes": n, "granules_chosen": len(sel.chosen), "skipped": MetadataValue.text("\n".join(sel.skipped) or "none"),
            "selection": MetadataValue.path(str(path)), "api": cfg.api, "status": "ok"})

    return [stac_scenes]
