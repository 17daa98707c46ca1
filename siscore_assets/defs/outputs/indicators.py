"""District indicators (seed 004): the multi-level model learns the district columns the countries
file names (``indicators: [population]``) from the country's tile scores.

Everything is computed before anything is written, so an unusable target leaves the earlier rows
in place and the error names the district layer and the column.
"""

import geopandas as gpd
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from siscore_assets.core.analysis import indicators as indicators_lib
from siscore_assets.core.analysis.districts import tile_coverage
from siscore_assets.core.countries import GENERATED, CountryConfig
from siscore_assets.core.models import batch_inference
from siscore_assets.core.models import habitation as habitation_lib

from ..common.context import OWNERS, country_only, not_configured
from ..common.data import district_layer, read_grid, year_tiles
from ..common.metadata import frame_md
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
TABLES = ("district_indicators", "indicator_splits", "indicator_tiles", "indicator_gini")
DESCRIPTIONS = {
    "district_indicators": "Per target and district: the value (labelled districts), the "
    "multi-level prediction sum(score) * exp(g(features)) refitted on every fitted district, "
    "the mean held-out prediction over the splits, the scaling factor exp(g), the score sum, "
    "the share of its tiles scored in the indicator year (`coverage`) and `fitted`: labelled "
    f"districts with a value <= 0, no scored tile or under {indicators_lib.MIN_COVERAGE:.0%} "
    "coverage are left out of fitting and evaluation (counted in the metadata).",
    "indicator_splits": "Per target, split and method: R² in the indicator's original scale and "
    "Spearman rho on the held-out districts of seeded 80/20 splits; methods: the multi-level "
    "model (with and without district-union augmentation), a ridge on the same features, OLS on "
    "the sum and on the mean of the score, OLS on the nightlight sum where a proxy exists.",
    "indicator_tiles": "Per target, tile and year: the score and the adjusted score "
    "(score + floor) * its district's scaling factor.",
    "indicator_gini": "Per target and year: Gini index of tile scores, adjusted tile scores and "
    "predicted district values.",
}


def _where(country: CountryConfig) -> str:
    """The district layer as errors name it: its file, or the generated layer."""
    if country.districts == GENERATED:
        return f"districts of {country.code} (generated)"
    return str(country.layer_file("districts"))


def _tiles(
    warehouse: Warehouse, country: CountryConfig, layer: gpd.GeoDataFrame, year: int
) -> tuple[dict[int, pd.DataFrame], pd.Series, pd.Series]:
    """Every year's grid with each tile's district, the district assignment (over the union of
    the years' tiles: a tile cloudy in the indicator year keeps its district in the others) and
    each district's share of its tiles scored in the indicator year (by district id)."""
    grids = {y: read_grid(warehouse, country.code, y) for y in country.years}
    places = [g[["tile_id", "z", "x", "y"]].drop_duplicates("tile_id") for g in grids.values()]
    assign = indicators_lib.assign_tiles(pd.concat(places, ignore_index=True), layer)
    for g in grids.values():
        g["district_id"] = g["tile_id"].map(assign)
    scored = grids[year][np.isfinite(grids[year]["score"].to_numpy(float))]
    position = pd.Series(np.arange(len(layer)), index=layer["district_id"].to_numpy())
    where = scored["district_id"].map(position).fillna(-1).to_numpy(np.int64)  # as tile_districts
    cover = tile_coverage(where, layer, int(scored["z"].iloc[0])) if len(scored) else 0.0
    coverage = pd.Series(cover, index=layer["district_id"].to_numpy(np.int64), dtype=float)
    return {y: g.dropna(subset=["district_id"]) for y, g in grids.items()}, assign, coverage


def _nightlight(warehouse: Warehouse, country: CountryConfig, year: int, assign: pd.Series):
    """Nightlight summed per district for the baseline; None without such a proxy."""
    if not country.has_layer("proxies"):
        return None
    prox = warehouse.read("proxies", {"country": country.code, "year": year})
    if prox.empty or "nightlight" not in prox.columns:
        return None
    d = prox["tile_id"].map(assign)
    return prox["nightlight"].groupby(d).sum()


def _embeddings(settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, year: int):
    """The indicator year's tiles as 3 principal components of the country's own Stage-1
    encoder (`habitation.pt`), the PCA fitted on a seeded sample of 5,000 tiles and applied
    batch by batch; None without that encoder or tile store (features: the scores only)."""
    path = settings.country_dir(country.code) / "models" / "habitation.pt"
    if not path.is_file():
        return None
    index, stack = year_tiles(
        settings, warehouse, country.code, year, columns="tile_id, image_row, stack_path"
    )
    if not len(index):
        return None
    model = habitation_lib.load_habitation(path, device=settings.device)
    rng = np.random.default_rng([country.models.seed, 4004])
    sample = np.sort(rng.choice(len(index), min(5000, len(index)), replace=False))
    mean, comp = indicators_lib.pca_basis(batch_inference.embed_rows(model, stack, sample), 3)
    proj = batch_inference.map_rows(
        lambda x: (habitation_lib.embed(model, x, batch_size=len(x)) - mean) @ comp.T, stack
    ).reshape(-1, len(comp))
    out = pd.DataFrame(proj, columns=[f"e{j}" for j in range(len(comp))])
    out.insert(0, "tile_id", index["tile_id"].to_numpy())
    return out


def build(p: Partitions) -> list:
    specs = [
        AssetSpec(
            t,
            owners=OWNERS,
            kinds={"duckdb"},
            deps=[
                p.from_years("siscore_grid"),
                p.from_years("proxies"),
                p.from_years("patches"),
                "districts",
                "habitation_model",
            ],
            description=DESCRIPTIONS[t],
        )
        for t in TABLES
    ]

    @multi_asset(partitions_def=p.country, group_name=GROUP, can_subset=False, specs=specs)
    def district_indicators(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country = country_only(context, settings)
        tables = {t: {"country": country.code} for t in TABLES}
        cfg = country.indicators
        if not country.has_layer("districts") or cfg is None:
            why = "no district layer" if cfg else "no district indicators (indicators: [column])"
            yield from not_configured(warehouse, country, why, tables)
            return
        layer = district_layer(warehouse, country.code)
        year = cfg.year or country.years[0]
        country.check_year(year)
        tiles, assign, coverage = _tiles(warehouse, country, layer, year)
        nl = _nightlight(warehouse, country, year, assign)
        emb = _embeddings(settings, warehouse, country, year) if cfg.embeddings else None
        results = {}
        for target in cfg.targets:
            results[target] = indicators_lib.run(
                tiles,
                pd.DataFrame(layer.drop(columns="geometry")),
                target,
                year,
                n_splits=cfg.splits,
                test_fraction=cfg.test_fraction,
                seed=country.models.seed,
                alpha=cfg.ridge_alpha,
                augment=cfg.augment,
                union_weight=cfg.union_weight,
                nightlight=nl,
                embedding=emb,
                where=_where(country),
                coverage=coverage,
            )
        summary = []
        for t, table in zip(TABLES, ("districts", "splits", "tiles", "gini"), strict=True):
            frame = pd.concat(
                [getattr(r, table).assign(target=k) for k, r in results.items()], ignore_index=True
            )
            frame.insert(0, "country", country.code)
            n = warehouse.write(t, frame, tables[t])
            summary.append((t, n))
        meta = {"status": "ok", "year": year, "targets": ", ".join(cfg.targets)}
        meta["features"] = "scores + 3 encoder PCs" if emb is not None else "scores only"
        for k, r in results.items():
            meta[f"r2_{k}"] = frame_md(indicators_lib.Evaluation(r.splits, None).summary())
            meta[f"left_out_{k}"] = r.left_out_line()  # labelled, not fitted nor evaluated
        for t, n in summary:
            yield MaterializeResult(asset_key=t, metadata={**meta, "rows": n})

    return [district_indicators]
