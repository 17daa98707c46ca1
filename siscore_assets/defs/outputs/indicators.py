"""District indicators (seed 004): the multi-level model learns the district columns the countries
file names (``indicators: [population]``) from the country's tile scores.

Everything is computed before anything is written, so an unusable target leaves the earlier rows
in place and the error names the district layer and the column.
"""

from collections.abc import Iterator, Mapping, Sequence
from functools import partial

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
from ..common.data import district_layer, required, year_tiles
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


GRID_COLUMNS = "tile_id, score"  # what the district model reads of a year's grid


class YearGrids(Mapping):
    """Each configured year's grid rows (tile id, score, district id) read when asked for, so a
    country's years are never held at once; tiles outside every district are left out."""

    def __init__(self, warehouse: Warehouse, code: str, years: Sequence[int], assign: pd.Series):
        self.warehouse, self.code, self.years, self.assign = warehouse, code, list(years), assign

    def __getitem__(self, year: int) -> pd.DataFrame:
        if year not in self.years:
            raise KeyError(year)
        keys = {"country": self.code, "year": year}
        grid = required(self.warehouse, "siscore_grid", keys, columns=GRID_COLUMNS)
        grid["district_id"] = grid["tile_id"].map(self.assign)
        return grid.dropna(subset=["district_id"])

    def __contains__(self, year: object) -> bool:
        return year in self.years

    def __iter__(self) -> Iterator[int]:
        return iter(self.years)

    def __len__(self) -> int:
        return len(self.years)


def _tiles(
    warehouse: Warehouse, country: CountryConfig, layer: gpd.GeoDataFrame, year: int
) -> tuple[YearGrids, pd.Series, pd.Series]:
    """The years' grids (read per year), the district assignment (over the union of the years'
    tiles: a tile cloudy in the indicator year keeps its district in the others; key columns
    only, a year at a time) and each district's share of its tiles scored in the indicator year
    (by district id)."""
    places, scored = None, None
    for y in country.years:
        keys = {"country": country.code, "year": y}
        columns = "tile_id, z, x, y" + (", score" if y == year else "")
        got = required(warehouse, "siscore_grid", keys, columns=columns)
        if y == year:  # the indicator year's scores too: read once
            scored = got.loc[np.isfinite(got.pop("score").to_numpy(float)), ["tile_id", "z"]]
        places = got if places is None else pd.concat([places, got], ignore_index=True)
        places = places.drop_duplicates("tile_id", ignore_index=True)
    assign = indicators_lib.assign_tiles(places, layer)
    del places
    position = pd.Series(np.arange(len(layer)), index=layer["district_id"].to_numpy())
    where = scored["tile_id"].map(assign).map(position).fillna(-1).to_numpy(np.int64)
    cover = tile_coverage(where, layer, int(scored["z"].iloc[0])) if len(scored) else 0.0
    coverage = pd.Series(cover, index=layer["district_id"].to_numpy(np.int64), dtype=float)
    return YearGrids(warehouse, country.code, country.years, assign), assign, coverage


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


def _append_tiles(spool, code: str, target: str, tiles: pd.DataFrame) -> None:
    """One year's `indicator_tiles` rows of one target, in the table's column order."""
    frame = tiles.assign(target=target)
    frame.insert(0, "country", code)
    spool.append(frame)


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
        results, rows = {}, {}
        # the tile rows of every year and target go to a spool: one year's are held at a time
        with warehouse.spool("indicator_tiles", tables["indicator_tiles"]) as tile_rows:
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
                    tile_sink=partial(_append_tiles, tile_rows, country.code, target),
                )
            rows["indicator_tiles"] = tile_rows.commit()
        for t, table in zip(TABLES, ("districts", "splits", None, "gini"), strict=True):
            if table is None:
                continue
            frame = pd.concat(
                [getattr(r, table).assign(target=k) for k, r in results.items()], ignore_index=True
            )
            frame.insert(0, "country", country.code)
            rows[t] = warehouse.write(t, frame, tables[t])
        meta = {"status": "ok", "year": year, "targets": ", ".join(cfg.targets)}
        meta["features"] = "scores + 3 encoder PCs" if emb is not None else "scores only"
        for k, r in results.items():
            meta[f"r2_{k}"] = frame_md(indicators_lib.Evaluation(r.splits, None).summary())
            meta[f"left_out_{k}"] = r.left_out_line()  # labelled, not fitted nor evaluated
        for t in TABLES:
            yield MaterializeResult(asset_key=t, metadata={**meta, "rows": rows[t]})

    return [district_indicators]
