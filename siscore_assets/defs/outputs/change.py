"""Change validated where the truth is known: `validation_change`, per country and year pair."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, asset

from siscore_assets.core.analysis import change

from ..common.context import OWNERS, country_only, not_configured
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
TRUTH = "building_floor_area_m2"


def _wide(warehouse: Warehouse, table: str, code: str, years, column: str) -> pd.DataFrame:
    """A table's ``column`` as tiles x years (years without rows left out)."""
    cols = {}
    for y in years:
        rows = warehouse.read(table, {"country": code, "year": y})
        if not rows.empty and column in rows.columns:
            cols[y] = rows.drop_duplicates("tile_id").set_index("tile_id")[column]
    return pd.DataFrame(cols)


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        kinds={"scipy", "duckdb"},
        deps=[
            p.from_years("siscore_grid"),
            p.from_years("proxies"),
            p.from_years("feature_baseline"),
        ],
        description="How score changes follow true changes (building floor area), for every "
        "consecutive year pair and first -> last: Spearman rho over the tiles whose truth "
        "changed, sign accuracy in the top decile of true change, share of still tiles flagged "
        "as significant change, share of changed tiles flagged, the pair's noise floor, rho "
        "against the change of log(1 + floor area) and that log change's own rho with the "
        "floor-area change (what a noiseless score linear in log floor area would reach); for "
        "siScore, the colour / texture feature ranker and nightlight, over the tiles inhabited "
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
        scores = {
            "siscore": _wide(warehouse, "siscore_grid", code, years, "score"),
            "feature_ranker": _wide(warehouse, "feature_baseline", code, years, "score"),
            "nightlight": _wide(warehouse, "proxies", code, years, "nightlight"),
        }
        scores = {k: v for k, v in scores.items() if v.shape[1] >= 2}
        table = change.validation_change(code, scores, truth, inhabited, TRUTH)
        n = warehouse.write("validation_change", table, keys)
        shown = table.assign(
            pair=table["year_from"].astype(str) + "-" + table["year_to"].astype(str)
        )
        shown = shown.pivot_table(
            index=["model", "pair"], columns="figure", values="value", sort=False
        ).reset_index()
        last = shown[(shown["model"] == "siscore") & (shown["pair"] == f"{years[0]}-{years[-1]}")]
        meta = {"rows": n, "status": "ok", "figures": frame_md(shown.round(3))}
        if len(last):
            meta.update(
                {f"siscore_{k}": float(last[k].iloc[0]) for k in change.HEADLINE if k in last}
            )
        context.log.info(f"validation_change {code}: {n} rows")
        return MaterializeResult(metadata=meta)

    return [validation_change]
