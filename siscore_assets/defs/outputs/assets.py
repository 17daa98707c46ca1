"""Outputs for analysts: rasters, change maps, district aggregates, validation, regression."""


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

from siscore_assets.core import districts as districts_lib
from siscore_assets.core import rasters, regression, validation

from ..common import OWNERS, country_only, country_year, frame_md, image_md
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "outputs"
PROXIES = ["building_floor_area_m2", "population", "nightlight"]
MIN_RHO_BUILDING = 0.5  # asset-check floor: below this the scorer has not learned development


def _grid(warehouse: Warehouse, code: str, year: int) -> pd.DataFrame:
    frame = warehouse.read("siscore_grid", {"country": code, "year": year})
    if frame.empty:
        raise FileNotFoundError(f"no siscore_grid rows for {code}|{year}: materialise 'siscore_grid' first")
    return frame


def _district_layer(warehouse: Warehouse, code: str):
    import geopandas as gpd

    frame = warehouse.read("districts", {"country": code})
    if frame.empty:
        raise FileNotFoundError(f"no districts for {code}: materialise 'districts' first")
    geom = gpd.GeoSeries.from_wkb(frame["geometry_wkb"].map(bytes), crs="EPSG:3857")
    return gpd.GeoDataFrame(frame.drop(columns=["geometry_wkb"]), geometry=geom)


def _raster_pair(df: pd.DataFrame, col: str, stem, title: str, **png) -> tuple[str, str, bytes]:
    tif = rasters.write_grid_geotiff(df, col, stem.with_suffix(".tif"), description=title, units="siScore")
    png_path = rasters.write_quicklook_png(df, col, stem.with_suffix(".png"), title=title, **png)
    return str(tif), str(png_path), png_path.read_bytes()


def _missing_layers(country, layers: tuple[str, ...], check: str | None = None) -> MaterializeResult | None:
    """A country without a ground layer this asset needs (e.g. PRK): record the skip, write nothing.

    An asset with a check must still report it: nothing to check against is reported as such.
    """
    missing = [layer for layer in layers if not country.has_layer(layer)]
    if not missing:
        return None
    why = f"country {country.code} has no {', '.join(missing)} layer"
    checks = [AssetCheckResult(check_name=check, passed=True, severity=AssetCheckSeverity.WARN,
                               metadata={"skipped": why})] if check else None
    return MaterializeResult(metadata={"skipped": why}, check_results=checks)


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

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"geopandas", "duckdb"},
        deps=["siscore_grid", "districts"],
        description="siScore per district: mean, sum, tile count and area-weighted mean (tiles "
        "assigned by centroid; area weights from tile/district intersections). Table "
        "`district_siscore`.",
    )
    def district_siscore(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        skip = _missing_layers(country, ("districts",))
        if skip:
            return skip
        grid = _grid(warehouse, country.code, year)
        layer = _district_layer(warehouse, country.code)
        agg = districts_lib.aggregate_by_district(grid, ["score"], layer, id_col="district_id")
        agg = agg.reset_index() if "district_id" not in agg.columns else agg
        agg.insert(0, "year", year)
        agg.insert(0, "country", country.code)
        n = warehouse.write("district_siscore", agg, {"country": country.code, "year": year})
        return MaterializeResult(metadata={"districts": n, "table": frame_md(agg.drop(columns=["country", "year"]))})

    def _joined(warehouse: Warehouse, code: str, year: int) -> pd.DataFrame:
        """siScore joined to the tile proxies (outer: tiles missing either side are kept, counted)."""
        grid = _grid(warehouse, code, year)
        prox = warehouse.read("proxies", {"country": code, "year": year})
        if prox.empty:
            raise FileNotFoundError(f"no proxies for {code}|{year}: materialise 'proxies' first")
        keep = ["tile_id"] + [c for c in PROXIES if c in prox.columns]
        joined = grid.merge(prox[keep], on="tile_id", how="outer", indicator=True)
        joined["siscore"] = joined["score"]
        joined["siscore_raw"] = joined["raw_score"] if "raw_score" in joined.columns else np.nan
        joined["nightlight_baseline"] = joined["nightlight"]
        return joined

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"scipy", "duckdb"},
        deps=["siscore_grid", "proxies"],
        description="Grid-level Spearman rho (with bootstrap CI) of siScore vs every proxy (building "
        "floor area, population, nightlight), with nightlight as a baseline model side by side; all "
        "tiles and inhabited tiles only; `siscore_raw` is the scorer before the uninhabited filter. Every tile with both values is used; the rest are counted "
        "as dropped. Table `validation_grid`.",
        check_specs=[AssetCheckSpec("tracks_building_area", asset="validation_grid",
                                    description=f"Spearman rho(siScore, building area) >= {MIN_RHO_BUILDING}")],
    )
    def validation_grid(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        skip = _missing_layers(country, ("proxies",), check="tracks_building_area")
        if skip:
            return skip
        joined = _joined(warehouse, country.code, year)
        proxies = [c for c in PROXIES if c in joined.columns]
        parts = []
        for subset, rows in (("all", joined), ("inhabited", joined[joined["inhabited"].fillna(False).astype(bool)])):
            table = validation.grid_validation(rows, ["siscore", "siscore_raw", "nightlight_baseline"], proxies, seed=country.models.seed)
            table = table[~((table["model"] == "nightlight_baseline") & (table["proxy"] == "nightlight"))]
            table.insert(0, "subset", subset)
            parts.append(table)
        table = pd.concat(parts, ignore_index=True)
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        n = warehouse.write("validation_grid", table, {"country": country.code, "year": year})
        pick = table[(table["model"] == "siscore") & (table["proxy"] == "building_floor_area_m2") & (table["subset"] == "all")]
        rho = float(pick["spearman_rho"].iloc[0]) if len(pick) else float("nan")
        return MaterializeResult(
            metadata={"rows": n, "rho_building_area": rho,
                      "table": frame_md(table.drop(columns=["country", "year"]))},
            check_results=[AssetCheckResult(check_name="tracks_building_area", passed=bool(rho >= MIN_RHO_BUILDING),
                                            severity=AssetCheckSeverity.WARN, metadata={"spearman_rho": rho})],
        )

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"statsmodels", "duckdb"},
        deps=["siscore_grid", "proxies", "districts"],
        description="District-level R² (OLS of log(1 + proxy density) on the district's mean score) "
        "for siScore and the nightlight baseline. Table `validation_district`.",
    )
    def validation_district(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        skip = _missing_layers(country, ("proxies", "districts"))
        if skip:
            return skip
        joined = _joined(warehouse, country.code, year)
        joined = joined[joined["_merge"] == "both"].drop(columns=["_merge"])
        layer = _district_layer(warehouse, country.code)
        agg = districts_lib.aggregate_by_district(joined, ["siscore", "nightlight_baseline", "building_floor_area_m2", "population"], layer, id_col="district_id")
        agg = agg.reset_index() if "district_id" not in agg.columns else agg
        km2 = agg["area_m2"] / 1e6
        agg["building_area_density"] = agg["building_floor_area_m2_sum"] / km2
        agg["population_density"] = agg["population_sum"] / km2
        table = validation.district_validation(
            agg.rename(columns={"siscore_mean": "siscore", "nightlight_baseline_mean": "nightlight_baseline"}),
            ["siscore", "nightlight_baseline"], ["building_area_density", "population_density"])
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        n = warehouse.write("validation_district", table, {"country": country.code, "year": year})
        return MaterializeResult(metadata={"rows": n, "districts": len(agg),
                                           "table": frame_md(table.drop(columns=["country", "year"]))})

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"statsmodels", "duckdb"},
        deps=["siscore_grid",
              "proxies", "covariates", "districts"],
        description="The paper's regression design: OLS of Δlog siScore (and Δlog nightlight, and "
        "1{Δ>0} as a linear probability) between the first and last year on distances to hubs, "
        "EDZ membership, mine adjacency, district controls and province fixed effects; SE "
        "clustered by district. Table `development_regression`.",
    )
    def development_regression(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        skip = _missing_layers(country, ("proxies", "covariates", "districts"))
        if skip:
            return skip
        rs = country.regression
        first, last = rs.first_year or country.years[0], rs.last_year or country.years[-1]
        a, b = _grid(warehouse, country.code, first), _grid(warehouse, country.code, last)
        pa = warehouse.read("proxies", {"country": country.code, "year": first})
        pb = warehouse.read("proxies", {"country": country.code, "year": last})
        cov = warehouse.read("covariates", {"country": country.code})
        dist = warehouse.read("districts", {"country": country.code}).drop(columns=["geometry_wkb"])
        df = a[["tile_id", "score", "inhabited"]].merge(b[["tile_id", "score", "inhabited"]], on="tile_id", suffixes=("_a", "_b"))
        df = df[df["inhabited_a"].fillna(False).astype(bool) | df["inhabited_b"].fillna(False).astype(bool)]
        df = df.merge(pa[["tile_id", "nightlight"]], on="tile_id").merge(pb[["tile_id", "nightlight"]], on="tile_id", suffixes=("_a", "_b"))
        df = df.merge(cov.drop(columns=["country"]), on="tile_id", how="left")
        df = df.merge(dist[["district_id", "population", "area_km2"]].rename(columns={"population": "district_population"}), on="district_id", how="left")
        df["delta_log_siscore"] = regression.delta_log(df["score_b"], df["score_a"])
        df["delta_log_nightlight"] = regression.delta_log(df["nightlight_b"], df["nightlight_a"])
        df["siscore_up"] = (df["score_b"] > df["score_a"]).astype(float)
        df["nightlight_up"] = (df["nightlight_b"] > df["nightlight_a"]).astype(float)
        df["log_district_population"] = np.log1p(df["district_population"])
        df["log_district_area"] = np.log(df["area_km2"])
        regs = [r for r in rs.regressors if r in df.columns] + ["log_district_population", "log_district_area"]
        fe = "province" if "province" in df.columns and df["province"].nunique() > 1 else None
        tables = []
        for outcome in ("delta_log_siscore", "delta_log_nightlight", "siscore_up", "nightlight_up"):
            tables.append(regression.ols_clustered(df, outcome, regs, "district_id", fixed_effects=fe))
        table = pd.concat(tables, ignore_index=True)
        table.insert(0, "last_year", last)
        table.insert(0, "first_year", first)
        table.insert(0, "country", country.code)
        n = warehouse.write("development_regression", table, {"country": country.code})
        main = table[table["outcome"] == "delta_log_siscore"]
        return MaterializeResult(metadata={
            "rows": n, "tiles": int(len(df)), "fixed_effects": fe or "none",
            "delta_log_siscore": MetadataValue.md(regression.to_markdown(main.drop(columns=["country", "first_year", "last_year"]))),
        })

    return [siscore_raster, siscore_change, district_siscore, validation_grid, validation_district, development_regression]
