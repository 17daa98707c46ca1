"""Maps: siScore and change rasters (COG + quicklook) and full-resolution mosaics per granule."""

import time

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

from siscore_assets.core.imagery.stac import granule_patches as granule_patches_lib
from siscore_assets.core.maps import mosaic, rasters

from ..common.context import OWNERS, country_year
from ..common.data import read_grid
from ..common.metadata import image_md, png_bytes
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
MOSAIC_MAX_PIXELS = (
    64_000_000  # per overlay (256 MB float32): keeps a tile-folder country's extent overlay cheap
)


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


def _overlay_png(overlay: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> bytes:
    from matplotlib import colormaps

    small = mosaic.preview(overlay, 512)
    rgba = colormaps["viridis"].with_extremes(bad=(0.83, 0.83, 0.83, 1.0))(
        np.ma.masked_invalid((small - vmin) / (vmax - vmin)), bytes=True
    )
    return png_bytes(rgba[..., :3])


def build(p: Partitions) -> list:
    cog_checks = {
        "valid_cog": "rio-cogeo validates the GeoTIFF as a Cloud-Optimised GeoTIFF",
        "pixels_match_tiles": "every pixel centre maps back to its tile and holds that tile's value",
    }

    def specs(name: str) -> list[AssetCheckSpec]:
        return [
            AssetCheckSpec(check, asset=name, description=text)
            for check, text in cog_checks.items()
        ]

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        deps=[p.same("siscore_grid")],
        kinds={"rasterio", "geotiff"},
        description="siScore as a Cloud-Optimised GeoTIFF (EPSG:3857, one pixel per tile, exact tile "
        "bounds, internal tiles and overviews, nodata where a tile is missing or uninhabited) and an "
        "RGBA PNG quicklook with a colour bar. Table `siscore_raster_files` (in the `raster_files` view).",
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
        warehouse.write(
            "siscore_raster_files",
            _files(country.code, year, "siscore", tif, png),
            {"country": country.code, "year": year},
        )
        _publish_raster_files(warehouse)
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
            check_results=_cog_checks(tif, grid, "score", "inhabited", "siscore_raster"),
        )

    change_deps = [p.with_previous_and_base("siscore_grid")]

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
                "delta_prev, log_ratio_prev, base_year, score_base, delta_base, log_ratio_base "
                "(any other pair: `siscore change --country C --from Y1 --to Y2`).",
            ),
            AssetSpec(
                "change_raster_files",
                owners=OWNERS,
                kinds={"geotiff", "duckdb"},
                deps=change_deps,
                description="Change COGs and PNG maps for both pairs, one row per file (in the "
                "`raster_files` view).",
            ),
        ],
    )
    def siscore_change(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        cur = read_grid(warehouse, country.code, year)
        earlier = [y for y in country.years if y < year]
        refs = {"prev": earlier[-1] if earlier else None, "base": country.years[0]}
        others: dict[str, tuple[int, pd.DataFrame]] = {}
        notes: dict[str, str] = {}
        for label, ref in refs.items():
            if ref is None or ref == year:
                continue
            other = warehouse.read("siscore_grid", {"country": country.code, "year": ref})
            if other.empty:
                notes[label] = f"year {ref} not materialised"
            else:
                others[label] = (ref, other)
        table = rasters.change_table(cur, refs, {k: v[1] for k, v in others.items()})
        n = warehouse.write("siscore_change", table, keys)
        meta: dict = {
            "rows": n,
            "status": "ok",
            "tiles": n,
            **{f"note_{k}": v for k, v in notes.items()},
        }
        folder = settings.country_dir(country.code) / "rasters"
        checks: list[AssetCheckResult] = []
        files = []
        for label, (ref, other) in sorted(others.items(), key=lambda kv: kv[0] != "base"):
            if label == "prev" and "base" in others and others["base"][0] == ref:
                continue  # same pair as the base one
            tif, png, ch = rasters.write_change_pair(
                other, cur, ref, year, folder, label=country.code
            )
            files.append(_files(country.code, year, f"change_{label}", tif, png))
            d = ch.loc[ch["inhabited_any"], "delta"]
            meta.update(
                {
                    f"map_{label}": image_md(png.read_bytes(), f"change {ref}→{year}"),
                    f"geotiff_{label}": MetadataValue.path(str(tif)),
                    f"mean_delta_vs_{label}": float(d.mean()) if len(d) else float("nan"),
                    f"tiles_up_0.05_vs_{label}": int((d > 0.05).sum()),
                    f"tiles_down_0.05_vs_{label}": int((d < -0.05).sum()),
                }
            )
            if not checks:
                checks = _cog_checks(tif, ch, "delta", "inhabited_any", "siscore_change")
        file_table = (
            pd.concat(files, ignore_index=True)
            if files
            else pd.DataFrame(columns=rasters.RASTER_FILE_COLUMNS)
        )
        n_files = warehouse.write("change_raster_files", file_table, keys)
        _publish_raster_files(warehouse)
        if not checks:  # the first year: nothing to compare, no raster to check
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
        description="Full-resolution siScore overlay per granule: every image pixel carries its patch's "
        "score (nodata where not scored or uninhabited), as a tiled GeoTIFF on the granule's exact "
        "bounds. numpy fill by default; settings.device='cuda' uses the PyCUDA kernel (extra 'gpu'). "
        "Countries without scenes (tile folders) get one overlay over the scored tiles' extent. With "
        "granule patching (`granule_siscore`), each granule's patches are also filled back into one "
        "overlay in its UTM CRS (`grid` = granule). Table `mosaic_files`.",
    )
    def siscore_mosaic(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        grid = read_grid(warehouse, country.code, year)
        granules = warehouse.read(
            "granules", {"country": country.code, "year": year}, order_by="granule_id"
        )
        if granules.empty or country.source_kind == "tile_folder":
            # A tile folder's 'granules' are single tiles: one overlay over the scored extent instead.
            x0, y0 = int(grid["x"].min()), int(grid["y"].min())
            granules = pd.DataFrame(
                [
                    {
                        "granule_id": "extent",
                        "tile_x0": x0,
                        "tile_y0": y0,
                        "tiles_x": int(grid["x"].max()) - x0 + 1,
                        "tiles_y": int(grid["y"].max()) - y0 + 1,
                        "tile_px": int(country.source.get("tile_px", 256)),
                    }
                ]
            )
        else:
            granules["tile_px"] = granules["width_px"] // granules["tiles_x"]
        backend = "cuda" if settings.device == "cuda" else "numpy"
        folder = settings.country_dir(country.code) / "rasters" / "mosaic" / str(year)
        rows, preview = [], None
        for g in granules.itertuples(index=False):
            tp = int(g.tile_px)
            while g.tiles_x * g.tiles_y * tp * tp > MOSAIC_MAX_PIXELS and tp > 1:
                tp //= 2  # a huge extent is drawn coarser rather than filling the disk
            scores = mosaic.scores_block(
                grid, g.tile_x0, g.tile_y0, g.tiles_x, g.tiles_y, mask_col="inhabited"
            )
            t0 = time.perf_counter()
            overlay = mosaic.fill(scores, tp, backend=backend)
            t1 = time.perf_counter()
            path = mosaic.write_overlay(
                overlay,
                country.zoom,
                g.tile_x0,
                g.tile_y0,
                g.tiles_x,
                g.tiles_y,
                folder / f"{g.granule_id}.tif",
                tags={"granule_id": g.granule_id},
            )
            t2 = time.perf_counter()
            rows.append(
                {
                    "country": country.code,
                    "year": year,
                    "granule_id": g.granule_id,
                    "path": str(path),
                    "width_px": overlay.shape[1],
                    "height_px": overlay.shape[0],
                    "tile_px": tp,
                    "patches_scored": int(np.isfinite(scores).sum()),
                    "backend": backend,
                    "fill_ms": (t1 - t0) * 1e3,
                    "write_ms": (t2 - t1) * 1e3,
                }
            )
            if preview is None:
                preview = _overlay_png(overlay)
        for row in rows:
            row.update(grid="xyz", crs="EPSG:3857")
        patch_scores = warehouse.read("granule_siscore", {"country": country.code, "year": year})
        if len(
            patch_scores
        ):  # the reproduction's granule patches, filled back in each granule's UTM zone
            bounds = warehouse.read("granule_patches", {"country": country.code, "year": year})
            patches = patch_scores.merge(
                bounds[["tile_id", "patch_px", "left", "bottom", "right", "top"]], on="tile_id"
            )
            for gid, g in patches.groupby("granule_id", sort=True):
                (left, bottom, right, top), nx, ny = granule_patches_lib.granule_extent(g)
                tp = int(g["patch_px"].iloc[0])  # every source pixel of the patch carries its score
                while nx * ny * tp * tp > MOSAIC_MAX_PIXELS and tp > 1:
                    tp //= 2
                scores = mosaic.scores_block(
                    g.rename(columns={"col": "x", "row": "y"}), 0, 0, nx, ny, mask_col="inhabited"
                )
                t0 = time.perf_counter()
                overlay = mosaic.fill(scores, tp, backend=backend)
                t1 = time.perf_counter()
                crs = f"EPSG:{int(g['epsg'].iloc[0])}"
                path = mosaic.write_overlay_at(
                    overlay,
                    crs,
                    (left, bottom, right, top),
                    folder / f"granule_{gid}.tif",
                    tags={
                        "granule_id": str(gid),
                        "patches_x": str(nx),
                        "patches_y": str(ny),
                        "patch_px": str(tp),
                    },
                )
                t2 = time.perf_counter()
                rows.append(
                    {
                        "country": country.code,
                        "year": year,
                        "granule_id": str(gid),
                        "path": str(path),
                        "width_px": overlay.shape[1],
                        "height_px": overlay.shape[0],
                        "tile_px": tp,
                        "patches_scored": int(np.isfinite(scores).sum()),
                        "backend": backend,
                        "fill_ms": (t1 - t0) * 1e3,
                        "write_ms": (t2 - t1) * 1e3,
                        "grid": "granule",
                        "crs": crs,
                    }
                )
        table = pd.DataFrame(rows)
        n = warehouse.write("mosaic_files", table, {"country": country.code, "year": year})
        mpx = float((table["width_px"] * table["height_px"]).sum() / 1e6)
        return MaterializeResult(
            metadata={
                "overlays": n,
                "megapixels": mpx,
                "backend": backend,
                "fill_ms_total": float(table["fill_ms"].sum()),
                "write_ms_total": float(table["write_ms"].sum()),
                "folder": MetadataValue.path(str(folder)),
                "first_overlay": image_md(preview, f"overlay {rows[0]['granule_id']}"),
            }
        )

    return [siscore_raster, siscore_change, siscore_mosaic]
