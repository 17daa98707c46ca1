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
from siscore_assets.core import regression, validation

from ..common import OWNERS, country_only, country_year, frame_md
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse
from . import maps

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


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"geopandas", "duckdb"},
        deps=["siscore_grid", "districts"],
        description="siScore per district: mean, sum, tile count and area-weighted mean (tiles "
        "assigned by centroid; area weights from tile/district intersections). Table "
        "`district_siscore`.",
    )
    def district_siscore(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
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

    return [*maps.build(p), district_siscore, validation_grid, validation_district, development_regression]
