"""Outputs for analysts: rasters and change maps (district aggregates, validation and the
regression live in `analysis.py`)."""


import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core import rasters

from ..common import OWNERS, country_year, image_md
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "outputs"


def _grid(warehouse: Warehouse, code: str, year: int) -> pd.DataFrame:
    frame = warehouse.read("siscore_grid", {"country": code, "year": year})
    if frame.empty:
        raise FileNotFoundError(f"no siscore_grid rows for {code}|{year}: materialise 'siscore_grid' first")
    return frame


def _raster_pair(df: pd.DataFrame, col: str, stem, title: str, **png) -> tuple[str, str, bytes]:
    tif = rasters.write_grid_geotiff(df, col, stem.with_suffix(".tif"), description=title, units="siScore")
    png_path = rasters.write_quicklook_png(df, col, stem.with_suffix(".png"), title=title, **png)
    return str(tif), str(png_path), png_path.read_bytes()


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, deps=["siscore_grid"],
        kinds={"rasterio", "geotiff"},
        description="siScore as a GeoTIFF (EPSG:3857, one pixel per tile, exact tile bounds, nodata "
        "where no score) and a PNG quicklook with a colour bar. Table `raster_files`.",
    )
    def siscore_raster(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        grid = _grid(warehouse, country.code, year)
        stem = settings.country_dir(country.code) / "rasters" / f"siscore_{year}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        tif, png, png_data = _raster_pair(grid, "score", stem, f"siScore {country.code} {year}")
        files = pd.DataFrame([{"country": country.code, "year": year, "kind": "siscore", "format": f, "path": pth}
                              for f, pth in (("geotiff", tif), ("png", png))])
        warehouse.write("raster_files", files, {"country": country.code, "year": year, "kind": "siscore"})
        return MaterializeResult(metadata={
            "geotiff": MetadataValue.path(tif), "quicklook": MetadataValue.path(png),
            "map": image_md(png_data, f"siScore {year}"), "tiles": len(grid),
        })

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, deps=["siscore_grid"],
        kinds={"duckdb", "geotiff"},
        description="Change of siScore per tile vs the previous configured year and vs the first "
        "year (whichever are materialised). Table `siscore_change`; change rasters and a map.",
    )
    def siscore_change(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        cur = _grid(warehouse, country.code, year)
        base = cur[["country", "year", "tile_id", "z", "x", "y", "score"]].copy()
        earlier = [y for y in country.years if y < year]
        notes = {}
        for label, ref in (("prev", earlier[-1] if earlier else None), ("base", country.years[0])):
            base[f"{label}_year"] = ref
            cols = {"score_prev": f"score_{label}", "delta": f"delta_{label}", "log_ratio": f"log_ratio_{label}"}
            other = pd.DataFrame()
            if ref is not None and ref != year:
                other = warehouse.read("siscore_grid", {"country": country.code, "year": ref})
                if other.empty:
                    notes[label] = f"year {ref} not materialised"
            if other.empty:
                for col in cols.values():
                    base[col] = np.nan
                continue
            ch = rasters.change_frame(cur, other, key=("z", "x", "y"), col="score").rename(columns=cols)
            base = base.merge(ch[["z", "x", "y", *cols.values()]], on=["z", "x", "y"], how="left")
        n = warehouse.write("siscore_change", base, {"country": country.code, "year": year})
        meta = {"tiles": n, **{f"note_{k}": v for k, v in notes.items()}}
        stem = settings.country_dir(country.code) / "rasters" / f"change_{country.years[0]}_{year}"
        if base["delta_base"].notna().any():
            tif, png, data = _raster_pair(base, "delta_base", stem, f"siScore change {country.years[0]}→{year}",
                                          vmin=-0.3, vmax=0.3, cmap="RdBu")
            warehouse.write("raster_files", pd.DataFrame([
                {"country": country.code, "year": year, "kind": "change_base", "format": f, "path": pth}
                for f, pth in (("geotiff", tif), ("png", png))]),
                {"country": country.code, "year": year, "kind": "change_base"})
            d = base["delta_base"].dropna()
            meta.update({"map": image_md(data, "change vs first year"), "geotiff": MetadataValue.path(tif),
                         "mean_delta_vs_first": float(d.mean()),
                         "tiles_up_0.05": int((d > 0.05).sum()), "tiles_down_0.05": int((d < -0.05).sum())})
        if base["delta_prev"].notna().any():
            meta["mean_delta_vs_prev"] = float(base["delta_prev"].mean())
        return MaterializeResult(metadata=meta)

    return [siscore_raster, siscore_change]
