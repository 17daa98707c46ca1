"""Maps: siScore and change rasters (COG + quicklook) and full-resolution mosaics per granule."""

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from siscore_assets.core.analysis.census_link import add_people
from siscore_assets.core.maps import change_maps, mosaic_files, rasters

from ..common.context import OWNERS, country_year
from ..common.data import read_census_link, read_grid, require_one_scorer
from ..common.metadata import image_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"


def _files(code: str, year: int, kind: str, tif, png) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"country": code, "year": year, "kind": kind, "format": f, "path": str(pth)}
            for f, pth in (("geotiff", tif), ("png", png))
        ]
    )


def _cog_checks(
    tif, frame: pd.DataFrame, col: str, mask_col: str | None, asset_key: str
) -> list[AssetCheckResult]:
    valid, errors, warns = rasters.validate_cog(tif)
    match = rasters.raster_matches_grid(tif, frame, col, mask_col)
    return [
        AssetCheckResult(
            check_name="valid_cog",
            asset_key=asset_key,
            passed=bool(valid),
            metadata={
                "errors": "; ".join(errors) or "none",
                "warnings": "; ".join(warns) or "none",
            },
        ),
        AssetCheckResult(
            check_name="pixels_match_tiles",
            asset_key=asset_key,
            passed=match["mismatched"] == 0,
            metadata=match,
        ),
    ]


def _publish_raster_files(warehouse: Warehouse) -> None:
    warehouse.union_view("raster_files", rasters.RASTER_FILE_TABLES, rasters.RASTER_FILE_COLUMNS)


def _record_files(
    warehouse: Warehouse,
    table: str,
    files: pd.DataFrame,
    keys: dict,
    checks: list[AssetCheckResult],
) -> int:
    """The partition's raster file rows, only when the blocking raster checks pass: a failed
    check leaves no row for `stac_catalog` / `web_map` to publish (the partition's rows are
    removed); returns the rows written."""
    failed = any(not c.passed and c.severity == AssetCheckSeverity.ERROR for c in checks)
    if failed:
        warehouse.clear(table, keys)
    n = 0 if failed else warehouse.write(table, files, keys)
    _publish_raster_files(warehouse)
    return n


def _overlay_png(small: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> bytes:
    """A PNG of an overlay's preview (viridis, grey where no score)."""
    from matplotlib import colormaps

    rgba = colormaps["viridis"].with_extremes(bad=(0.83, 0.83, 0.83, 1.0))(
        np.ma.masked_invalid((small - vmin) / (vmax - vmin)), bytes=True
    )
    return png_bytes(rgba[..., :3])


def build(p: Partitions) -> list:
    cog_checks = {
        "valid_cog": "rio-cogeo validates the GeoTIFF as a Cloud-Optimised GeoTIFF",
        "pixels_match_tiles": (
            "every pixel centre maps back to its tile and holds that tile's value"
        ),
    }

    def specs(name: str) -> list[AssetCheckSpec]:
        """Blocking: `stac_catalog` and `web_map` publish these files."""
        return [
            AssetCheckSpec(check, asset=name, description=text, blocking=True)
            for check, text in cog_checks.items()
        ]

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        deps=[p.same("siscore_grid")],
        kinds={"rasterio", "geotiff"},
        description="siScore as a Cloud-Optimised GeoTIFF (EPSG:3857, one pixel per tile, exact "
        "tile bounds, internal tiles and overviews, nodata where a tile is missing or "
        "uninhabited) and an RGBA PNG quicklook with a colour bar. Table `siscore_raster_files` "
        "(in the `raster_files` view).",
        check_specs=specs("siscore_raster"),
    )
    def siscore_raster(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        grid = read_grid(warehouse, country.code, year)
        stem = settings.country_dir(country.code) / "rasters" / f"siscore_{year}"
        title = f"siScore {country.code} {year}"
        tif = rasters.write_grid_geotiff(
            grid,
            "score",
            stem.with_suffix(".tif"),
            description=title,
            units="siScore",
            mask_col="inhabited",
        )
        png = rasters.write_quicklook_png(
            grid, "score", stem.with_suffix(".png"), title=title, mask_col="inhabited"
        )
        checks = _cog_checks(tif, grid, "score", "inhabited", "siscore_raster")
        _record_files(
            warehouse,
            "siscore_raster_files",
            _files(country.code, year, "siscore", tif, png),
            {"country": country.code, "year": year},
            checks,
        )
        inhabited = int(grid["inhabited"].fillna(False).astype(bool).sum())
        return MaterializeResult(
            metadata={
                "geotiff": MetadataValue.path(str(tif)),
                "quicklook": MetadataValue.path(str(png)),
                "map": image_md(png.read_bytes(), f"siScore {year}"),
                "tiles": len(grid),
                "tiles_with_data": inhabited,
                "tiles_nodata_uninhabited": len(grid) - inhabited,
            },
            check_results=checks,
        )

    change_deps = [p.with_previous_and_base("siscore_grid"), p.from_country("census_link")]

    @multi_asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        can_subset=False,
        check_specs=specs("siscore_change"),
        specs=[
            AssetSpec(
                "siscore_change",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=change_deps,
                description="Change of siScore per tile vs the previous configured year and vs "
                "the first year (whichever are materialised): score, prev_year, score_prev, "
                "delta_prev, log_ratio_prev, delta_lo_prev / delta_hi_prev (the delta's 95% "
                "interval from the pair's noise floor), significant_prev, and the same for base "
                "(any other pair: `siscore change --country C --from Y1 --to Y2`); with a "
                "`census_link`, people and delta_people_prev / delta_people_base (NaN without). "
                "docs/change.md says how the noise is measured.",
            ),
            AssetSpec(
                "change_raster_files",
                owners=OWNERS,
                kinds={"geotiff", "duckdb"},
                deps=change_deps,
                description="Change COGs and PNG maps for both pairs, one row per file (in the "
                "`raster_files` view); the PNGs draw changes within noise in grey.",
            ),
        ],
    )
    def siscore_change(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        verdicts = {}  # per year read, each tile's habitation verdict (who holds people)

        def read(ref: int) -> pd.DataFrame:
            grid = warehouse.read("siscore_grid", {"country": country.code, "year": ref})
            if not grid.empty:
                verdicts[ref] = grid.set_index("tile_id")["inhabited"]
            return grid

        refs = change_maps.reference_years(country.years, year)
        require_one_scorer(
            settings, warehouse, country.code, [y for y in (year, *refs.values()) if y is not None]
        )
        current = read_grid(warehouse, country.code, year)
        verdicts[year] = current.set_index("tile_id")["inhabited"]
        change = change_maps.year_change(
            current,
            country.years,
            year,
            read,
            settings.country_dir(country.code) / "rasters",
            label=country.code,
        )
        del current
        link = read_census_link(warehouse, country.code)
        n = warehouse.write("siscore_change", add_people(change.table, link, verdicts), keys)
        meta: dict = {
            "rows": n,
            "status": "ok",
            "tiles": n,
            **{f"note_{k}": v for k, v in change.notes.items()},
            "people": "census_link" if link else "none (no census_link)",
        }
        for pair in change.pairs:
            meta[f"map_{pair.label}"] = image_md(pair.png.read_bytes(), f"change {pair.ref}→{year}")
            meta[f"geotiff_{pair.label}"] = MetadataValue.path(str(pair.tif))
            meta.update(pair.stats())
        if change.pairs:
            first = change.pairs[0]
            checks = _cog_checks(
                first.tif, first.change, "delta", "inhabited_any", "siscore_change"
            )
        else:  # the first year: nothing to compare, no raster to check
            checks = [
                AssetCheckResult(
                    check_name=check,
                    asset_key="siscore_change",
                    passed=False,
                    severity=AssetCheckSeverity.WARN,
                    metadata={"status": "skipped", "reason": "no earlier year: no change raster"},
                )
                for check in cog_checks
            ]
        files = change.files(country.code, year)
        n_files = _record_files(warehouse, "change_raster_files", files, keys, checks)
        yield MaterializeResult(asset_key="siscore_change", metadata=meta, check_results=checks)
        yield MaterializeResult(
            asset_key="change_raster_files", metadata={"rows": n_files, "status": "ok"}
        )

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        deps=[
            p.same("siscore_grid"),
            p.same("granules"),
            p.same("granule_siscore"),
            p.same("granule_patches"),
        ],
        kinds={"numpy", "geotiff"},
        description="Full-resolution siScore overlay per granule: every image pixel carries its "
        "patch's score (nodata where not scored or uninhabited), as a tiled GeoTIFF on the "
        "granule's exact bounds. numpy fill by default; settings.device='cuda' uses the PyCUDA "
        "kernel (extra 'gpu'). Countries without scenes (tile folders) get one overlay over the "
        "scored tiles' extent. With granule patching (`granule_siscore`), each granule's patches "
        "are also filled back into one overlay in its UTM CRS (`grid` = granule). Table "
        "`mosaic_files`.",
    )
    def siscore_mosaic(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        grid = read_grid(warehouse, country.code, year)
        blocks = mosaic_files.grid_granules(
            grid,
            warehouse.read("granules", keys, order_by="granule_id"),
            # a tile folder's 'granules' are single tiles: one overlay over the scored extent
            single_tiles=country.source_kind == "tile_folder",
            tile_px=int(getattr(country.source, "tile_px", 256)),
        )
        patch_scores = warehouse.read("granule_siscore", keys)
        backend = "cuda" if settings.device == "cuda" else "numpy"
        folder = settings.country_dir(country.code) / "rasters" / "mosaic" / str(year)
        out = mosaic_files.write_mosaics(
            grid,
            blocks,
            patch_scores,
            warehouse.read("granule_patches", keys) if len(patch_scores) else None,
            zoom=country.zoom,
            folder=folder,
            backend=backend,
            country=country.code,
            year=year,
        )
        n = warehouse.write("mosaic_files", out.table, keys)
        return MaterializeResult(
            metadata={
                "overlays": n,
                "megapixels": out.megapixels,
                "backend": backend,
                "fill_ms_total": float(out.table["fill_ms"].sum()),
                "write_ms_total": float(out.table["write_ms"].sum()),
                "folder": MetadataValue.path(str(folder)),
                "first_overlay": image_md(
                    _overlay_png(out.preview), f"overlay {out.table['granule_id'].iloc[0]}"
                ),
            }
        )

    return [siscore_raster, siscore_change, siscore_mosaic]
