"""Change in people and change validated where the truth is known: `census_link` (siScore on a
census's scale, per country) and `validation_change` (per country and year pair)."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, asset

from siscore_assets.core.analysis import change
from siscore_assets.core.analysis.census_link import BETA_MAX, CensusLinkError, fit_from_grid

from ..common.context import OWNERS, country_only, not_configured
from ..common.data import district_layer, read_census_link, require_one_scorer
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
TRUTH = "building_floor_area_m2"


def _wide(warehouse: Warehouse, table: str, code: str, years, column: str) -> pd.DataFrame:
    """A table's ``column`` as tiles x years (years without rows left out)."""
    return _wides(warehouse, table, code, years, [column])[column]


def _wides(
    warehouse: Warehouse, table: str, code: str, years, columns: list[str]
) -> dict[str, pd.DataFrame]:
    """Each of a table's ``columns`` as tiles x years, every year's rows read once."""
    cols: dict[str, dict] = {c: {} for c in columns}
    for y in years:
        rows = warehouse.read(table, {"country": code, "year": y})
        if rows.empty:
            continue
        rows = rows.drop_duplicates("tile_id").set_index("tile_id")
        for c in columns:
            if c in rows.columns:
                cols[c][y] = rows[c]
    return {c: pd.DataFrame(v) for c, v in cols.items()}


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"scipy", "geopandas", "duckdb"},
        deps=[p.from_first_year("siscore_grid"), p.same("districts")],
        description="siScore on a census's scale, so that change is counted in people: the link "
        "people(s) = k expm1(beta s) / beta (beta 0: k s), fitted so that each district's sum over "
        "its tiles (centre inside) of the first configured year matches the district layer's "
        "population (least squares on logs, beta in [0, 30]). Table `census_link` (beta, k, "
        "districts used and left out as partly covered, log RMSE under the link and under the "
        "best linear one). Only tiles the year's verdict calls inhabited hold people; a "
        "district holding under 80 % of the grid's tiles centred in it is left out. Needs 5 "
        "districts with a population and scored tiles; otherwise not configured, saying why.",
    )
    def census_link(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        year = min(country.years)  # the census's year: the first configured
        layer = district_layer(warehouse, country.code) if country.has_layer("districts") else None
        grid = warehouse.read("siscore_grid", {"country": country.code, "year": year})
        why = None
        if layer is None or "population" not in layer.columns:
            why = "no district populations (a districts layer with population)"
        elif grid.empty:
            why = f"no siScore in {year}, the census's year (the first configured)"
        else:
            try:
                link, outside = fit_from_grid(grid, layer, year)
            except CensusLinkError as exc:
                why = str(exc)
        if why is not None:
            return not_configured(warehouse, country, why, {"census_link": keys})[0]
        row = pd.DataFrame([{"country": country.code, **link.as_row()}])
        warehouse.write("census_link", row, keys)
        context.log.info(
            f"census_link {country.code}: beta {link.beta:.3f} on {link.districts} districts, "
            f"log RMSE {link.log_rmse:.3f} (linear {link.log_rmse_linear:.3f})"
        )
        return MaterializeResult(
            metadata={
                "status": "ok",
                "census_year": year,
                "beta": link.beta,
                "beta_at_bound": bool(link.beta >= BETA_MAX - 1e-3),
                "people_per_unit": link.people_per_unit,
                "districts": link.districts,
                "districts_partly_covered": link.districts_partial,
                "log_rmse": link.log_rmse,
                "log_rmse_linear": link.log_rmse_linear,
                "tiles_outside_districts": outside,
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"scipy", "duckdb"},
        deps=[
            p.from_years("siscore_grid"),
            p.from_years("proxies"),
            p.from_years("feature_baseline"),
            p.same("census_link"),
        ],
        description="How score changes follow true changes (building floor area), for every "
        "consecutive year pair and first -> last: Spearman rho over the tiles whose truth "
        "changed, sign accuracy in the top decile of true change, share of still tiles flagged "
        "as significant change, share of changed tiles flagged, the pair's noise floor, rho "
        "against the change of log(1 + floor area) and that log change's own rho with the "
        "floor-area change (what a noiseless score linear in log floor area would reach), the "
        "partial rho given the pair's earlier score (what the delta adds to the level); for "
        "siScore, siScore in people (`siscore_census`, where the country has a `census_link`), "
        "the colour / texture feature ranker and nightlight, over the tiles inhabited "
        "in either year. Table `validation_change` (country, model, year_from, year_to, truth, "
        "figure, value); countries without floor-area truth write nothing.",
    )
    def validation_change(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        code, years = country.code, country.years
        truth = (
            _wide(warehouse, "proxies", code, years, TRUTH)
            if country.has_layer("proxies")
            else pd.DataFrame()
        )
        if truth.shape[1] < 2:
            why = f"no {TRUTH} truth in two years or more"
            return not_configured(warehouse, country, why, {"validation_change": keys})[0]
        inhabited = truth > 0
        require_one_scorer(settings, warehouse, code, years)
        grid = _wides(warehouse, "siscore_grid", code, years, ["score", "inhabited"])
        scores = {
            "siscore": grid["score"],
            "feature_ranker": _wide(warehouse, "feature_baseline", code, years, "score"),
            "nightlight": _wide(warehouse, "proxies", code, years, "nightlight"),
        }
        link = read_census_link(warehouse, code)
        if link is not None:  # the same scores on the census's scale, as siscore_change has them
            held = grid["inhabited"].reindex_like(scores["siscore"]).fillna(False)
            people = link.people(scores["siscore"].to_numpy(dtype=float), held.to_numpy(bool))
            scores["siscore_census"] = pd.DataFrame(
                people, index=scores["siscore"].index, columns=scores["siscore"].columns
            )
        scores = {k: v for k, v in scores.items() if v.shape[1] >= 2}
        table = change.validation_change(
            code, scores, truth, inhabited, TRUTH, flags_of={"siscore_census": "siscore"}
        )
        n = warehouse.write("validation_change", table, keys)
        meta = {"rows": n, "status": "ok", **change_headline(table, years)}
        context.log.info(f"validation_change {code}: {n} rows")
        return MaterializeResult(metadata=meta)

    return [census_link, validation_change]


def change_headline(table: pd.DataFrame, years: list[int]) -> dict:
    """`validation_change`'s metadata: every model's figures per year pair as a table, and the
    first-to-last pair's headline figures (those computed: a figure that is NaN for every pair,
    e.g. no tile's truth changed, is left out rather than failing the asset)."""
    shown = table.assign(pair=table["year_from"].astype(str) + "-" + table["year_to"].astype(str))
    shown = shown.pivot_table(
        index=["model", "pair"], columns="figure", values="value", sort=False
    ).reset_index()
    meta = {"figures": frame_md(shown.round(3))}
    span = shown["pair"] == f"{years[0]}-{years[-1]}"
    last = shown[(shown["model"] == "siscore") & span]
    if len(last):
        meta.update({f"siscore_{k}": float(last[k].iloc[0]) for k in change.HEADLINE if k in last})
    census = shown[(shown["model"] == "siscore_census") & span]
    if len(census) and "rho_changed" in census:
        meta["siscore_census_rho_changed"] = float(census["rho_changed"].iloc[0])
    return meta
