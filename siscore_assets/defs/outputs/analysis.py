"""Outputs an analyst can cite: district aggregates, data-guided POG baselines, validation of every
model against every proxy, and the paper's Table 1 regression design.

Every number is written next to the joined table it was computed from (`validation_tiles`,
`validation_district_panel`, `regression_panel`), so anyone can re-run scipy / statsmodels on
exactly those rows.  A ground layer set to `none` (or absent) is recorded as "not configured" and
the asset succeeds without rows.
"""

from typing import Optional

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core import districts as districts_lib
from siscore_assets.core import guided, regression, validation
from siscore_assets.core import imports as imports_lib
from siscore_assets.core.countries import CountryConfig

from ..common import (
    NOT_CONFIGURED,
    OWNERS,
    country_only,
    country_year,
    figure_png,
    frame_md,
    image_md,
    not_configured,
    read_grid,
)
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse
from ..stage2.assets import cluster_ids

GROUP = "outputs"
#: Built-in tile proxies validated against, when the country's `proxies` table has them.
PROXIES = ["building_floor_area_m2", "population", "nightlight"]
#: How districts aggregate a proxy: additive quantities become densities (per km² of ground),
#: intensities are averaged.
DISTRICT_PROXIES = {"building_floor_area_m2": ("building_area_density", "density"),
                    "population": ("population_density", "density"),
                    "nightlight": ("nightlight", "mean")}
MODEL_KINDS = {"siscore": "siscore", "siscore_raw": "siscore", "nl_regression": "baseline",
               "nl_guided_pog": "baseline", "lc_guided_pog": "baseline"}
#: A baseline built from a proxy is not validated against that proxy (it would be circular).
SKIP_PAIRS = [("nl_regression", "nightlight"), ("nl_guided_pog", "nightlight")]
MIN_RHO_BUILDING = 0.5  # asset-check floor: below this the scorer has not learned development


def _district_layer(warehouse: Warehouse, code: str):
    import geopandas as gpd

    frame = warehouse.read("districts", {"country": code})
    if frame.empty:
        raise FileNotFoundError(f"no districts for {code}: materialise 'districts' first")
    geom = gpd.GeoSeries.from_wkb(frame["geometry_wkb"].map(bytes), crs="EPSG:3857")
    return gpd.GeoDataFrame(frame.drop(columns=["geometry_wkb"]), geometry=geom)


def _imported(warehouse: Warehouse, table: str, code: str, year: int) -> dict[str, pd.DataFrame]:
    """Each import's rows for the year, by name; an import with no rows that year is still listed
    (empty), so a missing year shows as a model with 0 rows instead of vanishing."""
    rows = warehouse.read(table, {"country": code})
    if rows.empty:
        return {}
    this_year = imports_lib.for_year(rows, year)
    return {str(n): this_year[this_year["name"] == n] for n in sorted(rows["name"].unique())}


def joined_tiles(warehouse: Warehouse, country: CountryConfig, year: int) -> tuple[pd.DataFrame, list[str], list[str], dict]:
    """Every tile of the country-year with each model's score (`score_<model>`) and each proxy
    (`proxy_<name>`): the exact rows validation runs on.

    Tiles are those of the imagery index (`patches`, cloudy and corrupt included), the scored grid
    and the proxies; imported rows whose tile id is none of these are counted as unmatched.
    Returns the frame, the model and proxy names, and per-model counts of supplied rows.
    """
    code = country.code
    grid = read_grid(warehouse, code, year)
    patches = warehouse.read("patches", {"country": code, "year": year})
    prox = warehouse.read("proxies", {"country": code, "year": year}) if country.has_layer("proxies") else pd.DataFrame()
    keys = ["tile_id", "z", "x", "y"]
    parts = [grid[keys]]
    if not patches.empty:
        parts.append(patches[keys])
    if not prox.empty:
        parts.append(prox[keys])
    tiles = pd.concat(parts, ignore_index=True).drop_duplicates("tile_id").reset_index(drop=True)
    frame = tiles.copy()
    frame.insert(0, "year", year)
    frame.insert(0, "country", code)
    status = patches.drop_duplicates("tile_id").set_index("tile_id")["status"] if not patches.empty else pd.Series(dtype=object)
    frame["status"] = frame["tile_id"].map(status)
    g = grid.set_index("tile_id")
    frame["status"] = frame["status"].where(frame["status"].notna() | ~frame["tile_id"].isin(g.index), "ok")
    frame["inhabited"] = frame["tile_id"].map(g["inhabited"]).astype("boolean")
    models: list[str] = []
    supplied: dict[str, tuple[int, int]] = {}

    def add_model(name: str, values: pd.Series) -> None:
        frame[f"score_{name}"] = frame["tile_id"].map(values).astype(float)
        models.append(name)
        supplied[name] = (int(values.notna().sum()), int((~values.index.isin(tiles["tile_id"])).sum()))

    add_model("siscore", g["score"])
    if "raw_score" in g.columns:
        add_model("siscore_raw", g["raw_score"])
    proxies: list[str] = []
    if not prox.empty:
        p = prox.set_index("tile_id")
        for name in PROXIES:
            if name in p.columns and p[name].notna().any():
                frame[f"proxy_{name}"] = frame["tile_id"].map(p[name]).astype(float)
                proxies.append(name)
        if "nightlight" in p.columns and p["nightlight"].notna().any():
            add_model("nl_regression", p["nightlight"])  # the paper's NL-regression: VIIRS itself
    base = warehouse.read("baseline_scores", {"country": code, "year": year})
    for name in guided.BASELINE_PROXIES:
        rows = base[base["model"] == name] if not base.empty else base
        if len(rows):
            add_model(name, rows.set_index("tile_id")["score"])
    for name, rows in _imported(warehouse, "imported_scores", code, year).items():
        add_model(name, rows.set_index("tile_id")["score"])
    for name, rows in _imported(warehouse, "imported_proxies", code, year).items():
        frame[f"proxy_{name}"] = frame["tile_id"].map(rows.set_index("tile_id")["value"]).astype(float)
        proxies.append(str(name))
    return frame, models, proxies, supplied


def _model_kind(name: str) -> str:
    return MODEL_KINDS.get(name, "imported")


def _scatter_md(frame: pd.DataFrame, x: str, y: str, title: str) -> MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = frame[[x, y]].dropna()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter(ok[x], np.log1p(ok[y]), s=4, alpha=0.5)
    ax.set_xlabel(x.removeprefix("score_"))
    ax.set_ylabel(f"log(1 + {y.removeprefix('proxy_')})")
    ax.set_title(title)
    return image_md(figure_png(fig), title)


class RegressionYears(Config):
    """Which two years the regression compares (default: the countries file's
    `regression.first_year` / `last_year`, else the first and last configured years)."""

    first_year: Optional[int] = None  # noqa: UP045 - Dagster config needs Optional
    last_year: Optional[int] = None  # noqa: UP045


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"geopandas", "duckdb"},
        deps=["siscore_grid", "districts"],
        description="siScore per district: mean, sum, tile count (tiles assigned by centroid) and "
        "area-weighted mean (tile ∩ district areas), plus the district's ground area (equal-area "
        "CRS). Table `district_siscore`. No district layer: not configured.",
    )
    def district_siscore(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        if not country.has_layer("districts"):
            return not_configured(country, "no district layer (districts: none)")
        grid = read_grid(warehouse, country.code, year)
        layer = _district_layer(warehouse, country.code)
        agg = districts_lib.aggregate_by_district(grid, ["score"], layer, id_col="district_id")
        agg.insert(0, "year", year)
        agg.insert(0, "country", country.code)
        n = warehouse.write("district_siscore", agg, {"country": country.code, "year": year})
        return MaterializeResult(metadata={"districts": n, "status": "ok", **{k: int(v) for k, v in agg.attrs.items()},
                                           "table": frame_md(agg.drop(columns=["country", "year"]))})

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"duckdb"}, deps=["clusters", "guided_pogs"],
        description="The paper's data-guided POG baselines, read from the stage-2 `guided_pogs`: "
        "NL-guided (`nl_guided_pog`, proxy nightlight) and LC-guided (`lc_guided_pog`, built-up "
        "share from land cover). A tile's score is its cluster's `guided_score` "
        "(`guided_cluster_means`); the uninhabited cluster scores 0, clusters the POG leaves out "
        "NaN (counted). Table `baseline_scores`.",
    )
    def baseline_scores(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        if not country.has_layer("proxies"):
            return not_configured(country, "no proxies to guide a POG (proxies: none)")
        code = country.code
        members = warehouse.read("cluster_members", {"country": code})
        if members.empty:
            raise FileNotFoundError(f"no cluster_members for {code}: materialise 'clusters' first")
        _, bottom = cluster_ids(warehouse, code)
        pog_table = warehouse.read("guided_pogs", {"country": code})
        means = warehouse.read("guided_cluster_means", {"country": code})
        if pog_table.empty or means.empty:
            raise FileNotFoundError(f"no guided POGs for {code}: materialise 'guided_pogs' first")
        scores, summary, notes = [], [], {}
        for model, proxy in guided.BASELINE_PROXIES.items():
            row = pog_table[pog_table["proxy"] == proxy]
            if row.empty:
                notes[model] = f"no guided POG for '{proxy}' (list it in models.guided_proxies)"
                continue
            s = guided.baseline_tile_scores(members, means[means["proxy"] == proxy], bottom,
                                            int(row["n_tiers"].iloc[0]))
            s.insert(0, "model", model)
            scores.append(s)
            summary.append({"model": model, "proxy": proxy, "n_tiers": int(s["n_tiers"].iloc[0]),
                            "unscored_tile_years": int(s["score"].isna().sum()),
                            "pog_line": str(row["pog_line"].iloc[0])})
        out = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(
            columns=["model", "year", "tile_id", "cluster_id", "tier", "score", "n_tiers"])
        out.insert(0, "country", code)
        if scores:
            warehouse.write("baseline_scores", out, {"country": code})
        return MaterializeResult(metadata={
            "rows": len(out), "status": "ok" if scores else NOT_CONFIGURED,
            "unscored_tile_years": int(out["score"].isna().sum()),
            "pogs": frame_md(pd.DataFrame(summary)) if summary else MetadataValue.text("none"),
            **{f"note_{k}": v for k, v in notes.items()},
        })

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"scipy", "duckdb"},
        deps=["siscore_grid", "proxies", "patches", "baseline_scores", "imported_scores", "imported_proxies"],
        description="Grid-level Spearman rho (bootstrap 95% CI, 1,000 seeded resamples) of every "
        "model — siScore, raw scorer output, NL-regression, NL- and LC-guided POG baselines, every "
        "imported score — against every proxy (building floor area, population, nightlight, every "
        "imported proxy), over all tiles and inhabited tiles. Each pair uses every tile with both "
        "values; the others are counted by reason (cloudy, unusable, no score, no proxy, "
        "uninhabited). Tables `validation_grid` and `validation_tiles` (the joined rows).",
        check_specs=[AssetCheckSpec("tracks_building_area", asset="validation_grid",
                                    description=f"Spearman rho(siScore, building area) >= {MIN_RHO_BUILDING}")],
    )
    def validation_grid(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        frame, models, proxies, supplied = joined_tiles(warehouse, country, year)
        if not proxies:
            return MaterializeResult(
                metadata={"status": NOT_CONFIGURED, "note": f"{country.code}: no proxies configured or imported"},
                check_results=[AssetCheckResult(check_name="tracks_building_area", passed=True,
                                                metadata={"status": NOT_CONFIGURED})])
        parts = []
        skip = [(f"score_{m}", f"proxy_{q}") for m, q in SKIP_PAIRS]
        for subset, keep in (("all", None), ("inhabited", "inhabited")):
            t = validation.grid_validation(frame, [f"score_{m}" for m in models], [f"proxy_{q}" for q in proxies],
                                           seed=country.models.seed, keep_col=keep, skip_pairs=skip)
            t.insert(0, "subset", subset)
            parts.append(t)
        table = pd.concat(parts, ignore_index=True)
        table["model"] = table["model"].str.removeprefix("score_")
        table["proxy"] = table["proxy"].str.removeprefix("proxy_")
        table.insert(3, "model_kind", table["model"].map(_model_kind))
        table["score_rows"] = table["model"].map(lambda m: supplied[m][0])
        table["score_unmatched"] = table["model"].map(lambda m: supplied[m][1])
        table["n_boot"] = validation.DEFAULT_BOOT
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        warehouse.write("validation_tiles", frame, {"country": country.code, "year": year})
        n = warehouse.write("validation_grid", table, {"country": country.code, "year": year})
        pick = table[(table["model"] == "siscore") & (table["proxy"] == "building_floor_area_m2") & (table["subset"] == "all")]
        rho = float(pick["spearman_rho"].iloc[0]) if len(pick) else float("nan")
        meta = {"rows": n, "tiles": len(frame), "models": ", ".join(models), "proxies": ", ".join(proxies),
                "rho_building_area": rho, "status": "ok",
                "table": frame_md(table[table["subset"] == "all"][["model", "proxy", "n", "n_dropped", "spearman_rho",
                                                                     "ci_low", "ci_high"]])}
        if "proxy_building_floor_area_m2" in frame.columns:
            meta["scatter"] = _scatter_md(frame, "score_siscore", "proxy_building_floor_area_m2",
                                          f"siScore vs building area {country.code} {year}")
        return MaterializeResult(
            metadata=meta,
            check_results=[AssetCheckResult(check_name="tracks_building_area",
                                            passed=bool(rho >= MIN_RHO_BUILDING) if len(pick) else True,
                                            severity=AssetCheckSeverity.WARN, metadata={"spearman_rho": rho})],
        )

    @asset(
        partitions_def=p.country_year, group_name=GROUP, owners=OWNERS, kinds={"statsmodels", "duckdb"},
        deps=["siscore_grid", "proxies", "districts", "baseline_scores", "imported_scores", "imported_proxies"],
        description="District-level R² (OLS of log(1 + proxy) on the district's mean score, bootstrap "
        "95% CI over districts) for every model and proxy: building-area and population density per "
        "km² of ground, mean nightlight, imported proxies. Tables `validation_district` and "
        "`validation_district_panel` (the district rows regressed).",
    )
    def validation_district(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country, year = country_year(context, settings)
        if not country.has_layer("districts"):
            return not_configured(country, "no district layer (districts: none)")
        frame, models, proxies, _ = joined_tiles(warehouse, country, year)
        if not proxies:
            return not_configured(country, "no proxies configured or imported")
        layer = _district_layer(warehouse, country.code)
        specs = {s.name: s for s in imports_lib.stored_specs(imports_lib.imports_dir(settings.root, country.code, "proxies"))}
        cols = [f"score_{m}" for m in models] + [f"proxy_{q}" for q in proxies]
        agg = districts_lib.aggregate_by_district(frame, cols, layer, id_col="district_id")
        panel = agg[["district_id", "n_tiles", "area_km2"]].copy()
        for m in models:
            panel[m] = agg[f"score_{m}_mean"]
        district_proxies = []
        for q in proxies:
            name, how = DISTRICT_PROXIES.get(q, (f"{q}_density", specs[q].district if q in specs else "density"))
            if how == "mean":
                name = q
            panel[name] = agg[f"proxy_{q}_sum"] / agg["area_km2"] if how == "density" else agg[f"proxy_{q}_mean"]
            district_proxies.append((q, name))
        skip = [(m, DISTRICT_PROXIES[q][0] if q in DISTRICT_PROXIES else q) for m, q in SKIP_PAIRS]
        table = validation.district_validation(panel, models, [n for _, n in district_proxies],
                                               seed=country.models.seed, skip_pairs=skip)
        table.insert(1, "model_kind", table["model"].map(_model_kind))
        table.insert(0, "year", year)
        table.insert(0, "country", country.code)
        panel.insert(0, "year", year)
        panel.insert(0, "country", country.code)
        warehouse.write("validation_district_panel", panel, {"country": country.code, "year": year})
        n = warehouse.write("validation_district", table, {"country": country.code, "year": year})
        return MaterializeResult(metadata={"rows": n, "districts": len(panel), "status": "ok",
                                           "table": frame_md(table[["model", "proxy", "n", "r2", "ci_low", "ci_high"]])})

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, kinds={"statsmodels", "duckdb"},
        deps=["siscore_grid", "proxies", "covariates", "districts"],
        description="The paper's Table 1: OLS of (1) Δlog siScore, (2) Δlog nightlight, (3) 1{ΔsiScore>0} "
        "and (4) 1{Δnightlight>0} (linear probability) between two years (config `first_year`/"
        "`last_year`, default the countries file's regression years) on distances to capital / "
        "provincial / county hubs, EDZ dummies by type, mine and nuclear-site adjacency, log district "
        "population and area, province fixed effects; SE clustered by district. Tables "
        "`development_regression` (model, outcome, term, coef, se, t, p, n, r2, …) and "
        "`regression_panel` (the tiles regressed).",
    )
    def development_regression(context: AssetExecutionContext, config: RegressionYears, settings: SiscoreSettings,
                               warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        missing = [layer for layer in ("covariates", "districts") if not country.has_layer(layer)]
        if missing:
            return not_configured(country, f"no {' / '.join(missing)} layer(s) for the regression design")
        rs = country.regression
        first = config.first_year or rs.first_year or country.years[0]
        last = config.last_year or rs.last_year or country.years[-1]
        for y in (first, last):
            country.check_year(y)
        if first >= last:
            raise ValueError(f"regression years must be increasing, got {first} -> {last}")
        panel = regression_panel(warehouse, country, first, last)
        wanted = list(rs.regressors)
        regs = [r for r in wanted if r in panel.columns and panel[r].astype(float).nunique(dropna=True) > 1]
        dropped = [r for r in wanted if r not in regs]
        controls = [c for c in ("log_district_population", "log_district_area") if panel[c].notna().any()]
        dropped += [c for c in ("log_district_population", "log_district_area") if c not in controls]
        regs += controls
        fe = "province" if "province" in panel.columns and panel["province"].nunique() > 1 else None
        tables = []
        for model, outcome, _ in regression.TABLE1_MODELS:
            if outcome not in panel.columns or panel[outcome].notna().sum() == 0:
                continue
            t = regression.ols_clustered(panel, outcome, regs, "district_id", fixed_effects=fe)
            t.insert(0, "model", model)
            tables.append(t)
        table = pd.concat(tables, ignore_index=True)
        keys = {"country": country.code, "first_year": first, "last_year": last}
        for frame in (table, panel):
            for i, (k, v) in enumerate(keys.items()):
                frame.insert(i, k, v)
        warehouse.write("regression_panel", panel, keys)
        n = warehouse.write("development_regression", table, keys)
        return MaterializeResult(metadata={
            "rows": n, "tiles": int(len(panel)), "years": f"{first}-{last}", "fixed_effects": fe or "none",
            "regressors_left_out": ", ".join(dropped) or "none", "status": "ok",
            "table_1": MetadataValue.md(regression.table1_markdown(table)),
        })

    return [district_siscore, baseline_scores, validation_grid, validation_district, development_regression]


def regression_panel(warehouse: Warehouse, country: CountryConfig, first: int, last: int) -> pd.DataFrame:
    """One row per tile scored in both years and inhabited in either: outcomes, covariates,
    district controls — the exact rows the regressions use (less rows with missing values)."""
    code = country.code
    a, b = read_grid(warehouse, code, first), read_grid(warehouse, code, last)
    cov = warehouse.read("covariates", {"country": code})
    if cov.empty:
        raise FileNotFoundError(f"no covariates for {code}: materialise 'covariates' first")
    dist = warehouse.read("districts", {"country": code})
    if dist.empty:
        raise FileNotFoundError(f"no districts for {code}: materialise 'districts' first")
    df = a[["tile_id", "score", "inhabited"]].merge(b[["tile_id", "score", "inhabited"]], on="tile_id",
                                                    suffixes=("_first", "_last"))
    df = df[df["inhabited_first"].fillna(False).astype(bool) | df["inhabited_last"].fillna(False).astype(bool)]
    df["delta_log_siscore"] = regression.delta_log(df["score_last"], df["score_first"])
    df["siscore_up"] = (df["score_last"] > df["score_first"]).astype(float)
    if country.has_layer("proxies"):
        pa = warehouse.read("proxies", {"country": code, "year": first})
        pb = warehouse.read("proxies", {"country": code, "year": last})
        if not pa.empty and not pb.empty and "nightlight" in pa.columns:
            nl = pa[["tile_id", "nightlight"]].merge(pb[["tile_id", "nightlight"]], on="tile_id", suffixes=("_first", "_last"))
            df = df.merge(nl, on="tile_id", how="left")
            df["delta_log_nightlight"] = regression.delta_log(df["nightlight_last"], df["nightlight_first"])
            df["nightlight_up"] = (df["nightlight_last"] > df["nightlight_first"]).astype(float).where(df["nightlight_last"].notna())
    df = df.merge(cov.drop(columns=["country", "z", "x", "y"], errors="ignore"), on="tile_id", how="left")
    for col in ("population", "area_km2"):
        if col not in dist.columns:
            dist[col] = np.nan  # a district layer without the attribute: that control is left out
    controls = dist[["district_id", "population", "area_km2"]].rename(columns={"population": "district_population",
                                                                             "area_km2": "district_area_km2"})
    df = df.merge(controls, on="district_id", how="left")
    df["log_district_population"] = np.log1p(df["district_population"].astype(float))
    df["log_district_area"] = np.log(df["district_area_km2"].astype(float))
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]):
            df[c] = df[c].astype(float)
    return df.reset_index(drop=True)
