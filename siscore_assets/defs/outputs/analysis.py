"""Outputs an analyst can cite: district aggregates, data-guided POG baselines, validation of every
model against every proxy, and the paper's Table 1 regression design.

Every number is written next to the joined table it was computed from (`validation_tiles`,
`validation_district_panel`, `regression_panel`).  A ground layer set to `none` (or absent) is
recorded as "not configured": the partition's rows become nothing and the asset succeeds.
"""

from typing import Optional

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from siscore_assets.core.analysis import districts as districts_lib
from siscore_assets.core.analysis import imported as imported_lib
from siscore_assets.core.analysis import panels, regression, reports, validation
from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.ranking import guided

from ..common.context import (
    OWNERS,
    country_only,
    country_year,
    imagery_not_configured,
    not_configured,
)
from ..common.data import (
    cluster_ids,
    district_layer,
    read_grid,
    require_one_scorer,
    required,
)
from ..common.metadata import frame_md, scatter_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
MIN_RHO_BUILDING = 0.5  # asset-check floor: below this the scorer has not learned development


class RegressionYears(Config):
    """Which two years the regression compares (default: the countries file's
    `regression.first_year` / `last_year`, else the first and last configured years)."""

    first_year: Optional[int] = None  # noqa: UP045 - Dagster config needs Optional
    last_year: Optional[int] = None  # noqa: UP045


def _joined(warehouse: Warehouse, country: CountryConfig, year: int) -> panels.JoinedTiles:
    """Read every input of the validation join for one country-year (all declared deps)."""
    code = country.code
    keys = {"country": code, "year": year}
    prox = warehouse.read("proxies", keys) if country.has_layer("proxies") else pd.DataFrame()
    imported = panels.imported_by_name(warehouse.read("imported_proxies", {"country": code}), year)
    if country.surveys is not None:  # the survey: one more proxy, named after it
        imported.update(
            panels.imported_by_name(warehouse.read("survey_tiles", {"country": code}), year)
        )
    return panels.joined_tiles(
        code,
        year,
        read_grid(warehouse, code, year),
        warehouse.read("patches", keys, columns="tile_id, z, x, y, status"),
        prox,
        warehouse.read("baseline_scores", keys),
        panels.imported_by_name(warehouse.read("imported_scores", {"country": code}), year),
        imported,
        features=warehouse.read("feature_baseline", keys),
        ordinal=warehouse.read("ordinal_baseline", keys),
    )


def _survey_clusters(
    warehouse: Warehouse, country: CountryConfig, year: int
) -> tuple[str, pd.DataFrame] | None:
    """The survey's name and its `survey_clusters` rows of the year, which `validation_grid`
    validates per cluster; None without a survey."""
    if country.surveys is None:
        return None
    rows = warehouse.read("survey_clusters", {"country": country.code})
    if rows.empty and not warehouse.read("survey_tiles", {"country": country.code}).empty:
        raise FileNotFoundError(
            f"no survey_clusters for {country.code}: materialise 'survey_tiles' again (it now "
            "also writes the clusters the survey is validated on)"
        )
    return country.surveys.name, rows[rows["year"] == year] if not rows.empty else rows


def _building_check(rho: float | None, reason: str) -> AssetCheckResult:
    """``tracks_building_area``: rho >= the floor; skipped (a warning) without a rho."""
    if rho is None:
        return AssetCheckResult(
            check_name="tracks_building_area",
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={"status": "skipped", "reason": reason},
        )
    return AssetCheckResult(
        check_name="tracks_building_area",
        passed=bool(rho >= MIN_RHO_BUILDING),
        severity=AssetCheckSeverity.WARN,
        metadata={"spearman_rho": rho},
    )


def build(p: Partitions) -> list:
    validation_inputs = [
        p.same("siscore_grid"),
        p.same("proxies"),
        p.same("patches"),
        p.same("feature_baseline"),
        p.same("ordinal_baseline"),
        p.from_country("baseline_scores"),
        p.from_country("imported_scores"),
        p.from_country("imported_proxies"),
        p.from_country("survey_tiles"),
        p.from_country("survey_clusters"),
    ]

    @asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"geopandas", "duckdb"},
        deps=[p.same("siscore_grid"), p.from_country("districts")],
        description="siScore per district: mean, sum, tile count (tiles assigned by centroid) and "
        "area-weighted mean (tile ∩ district areas), plus the district's ground area (equal-area "
        "CRS). Table `district_siscore`. No district layer: not configured.",
    )
    def district_siscore(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        if not country.has_layer("districts"):
            return not_configured(
                warehouse,
                country,
                "no district layer (districts: none)",
                {"district_siscore": keys},
            )[0]
        grid = read_grid(warehouse, country.code, year)
        agg = districts_lib.aggregate_by_district(
            grid, ["score"], district_layer(warehouse, country.code), id_col="district_id"
        )
        agg.insert(0, "year", year)
        agg.insert(0, "country", country.code)
        n = warehouse.write("district_siscore", agg, keys)
        return MaterializeResult(
            metadata={
                "districts": n,
                "status": "ok",
                **{k: int(v) for k, v in agg.attrs.items()},
                "table": frame_md(agg.drop(columns=["country", "year"])),
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"duckdb"},
        deps=["clusters", "cluster_members", "guided_pogs", "guided_cluster_means"],
        description="The paper's data-guided POG baselines, read from `guided_pogs`: NL-guided "
        "(`nl_guided_pog`, proxy nightlight) and LC-guided (`lc_guided_pog`, built-up share from "
        "land cover). A tile's score is its cluster's `guided_score` (`guided_cluster_means`); "
        "the uninhabited cluster scores 0, clusters the POG leaves out NaN (counted). Table "
        "`baseline_scores`.",
    )
    def baseline_scores(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        code = country.code
        keys = {"country": code}
        if done := imagery_not_configured(warehouse, country, {"baseline_scores": keys}):
            return done[0]  # no clusters to guide
        if not country.has_layer("proxies"):
            return not_configured(
                warehouse,
                country,
                "no proxies to guide a POG (proxies: none)",
                {"baseline_scores": keys},
            )[0]
        members = required(warehouse, "cluster_members", keys, asset="clusters")
        _, bottom = cluster_ids(warehouse, code)
        pog_table = required(warehouse, "guided_pogs", keys)
        means = required(warehouse, "guided_cluster_means", keys, asset="guided_pogs")
        scores, summary, notes = [], [], {}
        for model, proxy in guided.BASELINE_PROXIES.items():
            row = pog_table[pog_table["proxy"] == proxy]
            if row.empty:
                notes[model] = f"no guided POG for '{proxy}' (list it in models.guided_proxies)"
                continue
            s = guided.baseline_tile_scores(
                members, means[means["proxy"] == proxy], bottom, int(row["n_tiers"].iloc[0])
            )
            s.insert(0, "model", model)
            scores.append(s)
            summary.append(
                {
                    "model": model,
                    "proxy": proxy,
                    "n_tiers": int(s["n_tiers"].iloc[0]),
                    "unscored_tile_years": int(s["score"].isna().sum()),
                    "pog_line": str(row["pog_line"].iloc[0]),
                }
            )
        if not scores:
            return not_configured(
                warehouse, country, "; ".join(notes.values()), {"baseline_scores": keys}
            )[0]
        out = pd.concat(scores, ignore_index=True)
        out.insert(0, "country", code)
        n = warehouse.write("baseline_scores", out, keys)
        return MaterializeResult(
            metadata={
                "rows": n,
                "status": "ok",
                "unscored_tile_years": int(out["score"].isna().sum()),
                "pogs": frame_md(pd.DataFrame(summary)),
                **{f"note_{k}": v for k, v in notes.items()},
            }
        )

    @multi_asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        can_subset=False,
        check_specs=[
            AssetCheckSpec(
                "tracks_building_area",
                asset="validation_grid",
                description=f"Spearman rho(siScore, building area) >= {MIN_RHO_BUILDING}",
            )
        ],
        specs=[
            AssetSpec(
                "validation_grid",
                owners=OWNERS,
                kinds={"scipy", "duckdb"},
                deps=validation_inputs,
                description="Grid-level Spearman rho (bootstrap 95% CI, 1,000 seeded resamples) "
                "of every model — siScore, raw scorer output, NL-regression, NL- and LC-guided "
                "POG baselines, the colour / texture feature ranker, every imported score — "
                "against every proxy (building floor area, population, nightlight, every imported "
                "proxy), over all tiles and inhabited tiles. Each pair uses every tile with both "
                "values; the others are counted by reason. A survey is validated per cluster "
                "(`survey_clusters`: n = clusters, each cluster's expected score over where it "
                "may be), not per tile.",
            ),
            AssetSpec(
                "validation_tiles",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=validation_inputs,
                description="The joined rows `validation_grid` is computed from: one per tile, "
                "with its status, inhabited flag, `score_<model>` and `proxy_<proxy>` columns.",
            ),
        ],
    )
    def validation_grid(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        joined = _joined(warehouse, country, year)
        if not joined.proxies:
            note = "no proxies configured or imported"
            results = not_configured(
                warehouse, country, note, {"validation_grid": keys, "validation_tiles": keys}
            )
            yield MaterializeResult(
                asset_key="validation_grid",
                metadata=results[0].metadata,
                check_results=[_building_check(None, f"{country.code}: {note}")],
            )
            yield results[1]
            return
        table = panels.validation_grid_table(
            joined,
            country.code,
            year,
            country.models.seed,
            _survey_clusters(warehouse, country, year),
            country.models.guided_annotator,  # siScore not validated on what guided it
        )
        n_tiles = warehouse.write("validation_tiles", joined.frame, keys)
        n = warehouse.write("validation_grid", table, keys)
        rho = reports.building_rho(table)
        meta = {
            "rows": n,
            "tiles": n_tiles,
            "models": ", ".join(joined.models),
            "proxies": ", ".join(joined.proxies),
            "rho_building_area": float("nan") if rho is None else rho,
            **({"survey_rows": "per cluster (n = clusters)"} if country.surveys else {}),
            "status": "ok",
            "table": frame_md(
                table[table["subset"] == "all"][
                    ["model", "proxy", "n", "n_dropped", "spearman_rho", "ci_low", "ci_high"]
                ]
            ),
        }
        if "proxy_building_floor_area_m2" in joined.frame.columns:
            meta["scatter"] = scatter_md(
                joined.frame,
                "score_siscore",
                "proxy_building_floor_area_m2",
                f"siScore vs building area {country.code} {year}",
            )
        check = _building_check(rho, "no building floor area proxy")
        yield MaterializeResult(asset_key="validation_grid", metadata=meta, check_results=[check])
        yield MaterializeResult(
            asset_key="validation_tiles", metadata={"rows": n_tiles, "status": "ok"}
        )

    @multi_asset(
        partitions_def=p.country_year,
        group_name=GROUP,
        can_subset=False,
        specs=[
            AssetSpec(
                "validation_district",
                owners=OWNERS,
                kinds={"statsmodels", "duckdb"},
                deps=[*validation_inputs, p.from_country("districts")],
                description="District-level R² (OLS of log(1 + proxy) on the district's mean "
                "score, bootstrap 95% CI over districts) for every model and proxy: building-area "
                "and population density per km² of ground, mean nightlight, imported proxies; "
                "the survey's district mean untransformed (its value may be signed).",
            ),
            AssetSpec(
                "validation_district_panel",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=[*validation_inputs, p.from_country("districts")],
                description="The district rows regressed: tiles, ground area, mean score per "
                "model, each district proxy.",
            ),
        ],
    )
    def validation_district(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country, year = country_year(context, settings)
        keys = {"country": country.code, "year": year}
        tables = {"validation_district": keys, "validation_district_panel": keys}
        if not country.has_layer("districts"):
            yield from not_configured(
                warehouse, country, "no district layer (districts: none)", tables
            )
            return
        joined = _joined(warehouse, country, year)
        if not joined.proxies:
            yield from not_configured(
                warehouse, country, "no proxies configured or imported", tables
            )
            return
        specs = imported_lib.stored_specs(
            imported_lib.imports_dir(settings.root, country.code, "proxies")
        )
        survey_how = {country.surveys.name: "mean"} if country.surveys else {}  # an intensity
        cols = [f"score_{m}" for m in joined.models] + [f"proxy_{q}" for q in joined.proxies]
        layer = district_layer(warehouse, country.code)
        agg = districts_lib.aggregate_by_district(joined.frame, cols, layer, id_col="district_id")
        panel, district_proxies = panels.district_panel(
            agg, joined.models, joined.proxies, {s.name: s.district for s in specs} | survey_how,
            coverage=districts_lib.aggregate_coverage(agg, layer, country.zoom),
        )  # fmt: skip
        table = validation.district_validation(
            panel,
            joined.models,
            [n for _, n in district_proxies],
            seed=country.models.seed,
            skip_pairs=panels.district_skip_pairs(country.models.guided_annotator),
            untransformed=list(survey_how),  # a survey value may be signed (a wealth index)
        )
        table.insert(1, "model_kind", table["model"].map(panels.model_kind))
        for frame in (table, panel):
            frame.insert(0, "year", year)
            frame.insert(0, "country", country.code)
        n_panel = warehouse.write("validation_district_panel", panel, keys)
        n = warehouse.write("validation_district", table, keys)
        yield MaterializeResult(
            asset_key="validation_district",
            metadata={
                "rows": n,
                "districts": n_panel,
                "status": "ok",
                "table": frame_md(table[["model", "proxy", "n", "r2", "ci_low", "ci_high"]]),
            },
        )
        yield MaterializeResult(
            asset_key="validation_district_panel", metadata={"rows": n_panel, "status": "ok"}
        )

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        specs=[
            AssetSpec(
                "development_regression",
                owners=OWNERS,
                kinds={"statsmodels", "duckdb"},
                deps=[
                    p.from_years("siscore_grid"),
                    p.from_years("proxies"),
                    "covariates",
                    "districts",
                ],
                description="The paper's Table 1: OLS of (1) Δlog siScore, (2) Δlog nightlight, "
                "(3) 1{ΔsiScore>0} and (4) 1{Δnightlight>0} (linear probability) between two "
                "years (config `first_year`/`last_year`, default the countries file's regression "
                "years) on distances to capital / provincial / county hubs, EDZ dummies by type, "
                "mine and nuclear-site adjacency, log district population and area, province "
                "fixed effects; SE clustered by district (model, outcome, term, coef, se, t, p, "
                "n, r2 …).",
            ),
            AssetSpec(
                "regression_panel",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=[
                    p.from_years("siscore_grid"),
                    p.from_years("proxies"),
                    "covariates",
                    "districts",
                ],
                description="The tiles regressed: scored in both years and inhabited in either, "
                "with outcomes, covariates and district controls.",
            ),
        ],
    )
    def development_regression(
        context: AssetExecutionContext,
        config: RegressionYears,
        settings: SiscoreSettings,
        warehouse: Warehouse,
    ):
        country = country_only(context, settings)
        missing = [layer for layer in ("covariates", "districts") if not country.has_layer(layer)]
        rs = country.regression
        first = config.first_year or rs.first_year or country.years[0]
        last = config.last_year or rs.last_year or country.years[-1]
        keys = {"country": country.code, "first_year": first, "last_year": last}
        note = f"no {' / '.join(missing)} layer(s) for the regression design" if missing else None
        if not missing and len(set(country.years)) < 2:  # one year: no change to regress
            note = "needs two configured years"
        if note:
            tables = ("development_regression", "regression_panel")
            yield from not_configured(
                warehouse, country, note, {t: {"country": country.code} for t in tables}
            )
            return
        for y in (first, last):
            country.check_year(y)
        if first >= last:
            raise ValueError(f"regression years must be increasing, got {first} -> {last}")
        code = country.code
        require_one_scorer(settings, warehouse, code, (first, last))
        with_proxies = country.has_layer("proxies")
        result = reports.development_regression(
            read_grid(warehouse, code, first),
            read_grid(warehouse, code, last),
            required(warehouse, "covariates", {"country": code}),
            required(warehouse, "districts", {"country": code}),
            warehouse.read("proxies", {"country": code, "year": first}) if with_proxies else None,
            warehouse.read("proxies", {"country": code, "year": last}) if with_proxies else None,
            regressors=rs.regressors,
            cluster=rs.cluster,
            keys=keys,
            country=code,
        )
        n_panel = warehouse.write("regression_panel", result.panel, keys)
        n = warehouse.write("development_regression", result.table, keys)
        yield MaterializeResult(
            asset_key="development_regression",
            metadata={
                "rows": n,
                "tiles": n_panel,
                "years": f"{first}-{last}",
                "fixed_effects": result.fixed_effects or "none",
                "regressors_left_out": ", ".join(result.dropped) or "none",
                "cluster": rs.cluster,
                "status": "ok",
                "regressors_without_layer": ", ".join(result.without_layer) or "none",
                "table_1": MetadataValue.md(
                    regression.table1_markdown(result.table, cluster=rs.cluster)
                ),
            },
        )
        yield MaterializeResult(
            asset_key="regression_panel", metadata={"rows": n_panel, "status": "ok"}
        )

    return [
        district_siscore,
        baseline_scores,
        validation_grid,
        validation_district,
        development_regression,
    ]
