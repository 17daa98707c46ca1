"""Survey points (``surveys:`` in the countries file) as a tile proxy, their displacement handled
(``core/analysis/surveys.py``); `validation_grid` and `validation_district` read the table as
one more proxy named after the survey, `validation_grid` per cluster (`survey_clusters`).  A bad
file fails before anything is written."""

import pandas as pd
from dagster import AssetExecutionContext, AssetSpec, MaterializeResult, multi_asset

from siscore_assets.core.analysis import score_source
from siscore_assets.core.analysis import surveys as surveys_lib
from siscore_assets.core.countries import CountryConfig

from ..common.context import OWNERS, country_only, not_configured
from ..common.data import required
from ..common.partitions import Partitions
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "outputs"
GRID = ("tile_id", "z", "x", "y", "inhabited")


def _grid(warehouse: Warehouse, country: CountryConfig, year: int) -> pd.DataFrame:
    """The year's scored tiles and the uninhabited filter's verdict (what `siscore_grid` will
    hold, known before the scorer); an analysis-only country's from its score file."""
    if country.analysis_only:
        frame = score_source.country_year_scores(country, year)
    else:
        keys = {"country": country.code, "year": year}
        frame = required(warehouse, "habitation", keys, columns="tile_id, z, x, y, inhabited")
    return frame[list(GRID)]


def _spec(p: Partitions, name: str, description: str) -> AssetSpec:
    """One of the two tables the survey asset writes (each country reads all its years'
    habitation)."""
    return AssetSpec(
        name,
        owners=OWNERS,
        kinds={"duckdb"},
        deps=[p.from_years("habitation")],
        description=description,
    )


def build(p: Partitions) -> list:
    specs = [
        _spec(
            p,
            "survey_tiles",
            "Survey clusters as tile values: per survey year and tile, the clusters' "
            "mean value (`value`, weighted by their probability of being there times their survey "
            "weight), the expected clusters in the tile (`mass`, weights not counted) and how "
            "many may be there (`n_points`); tiles with under `min_mass` expected clusters are "
            "left out. Displaced coordinates are handled by the exact "
            "expectation over the displacement (DHS's rule by default), with clusters placed only "
            "in inhabited tiles (`habitation`; an analysis-only country's score file); `handling: "
            "ignore` counts each point where it is published. Table `survey_tiles` (read by "
            "`guided_pogs`, so it cannot wait for `siscore_grid`). No `surveys:`: not configured.",
        ),
        _spec(
            p,
            "survey_clusters",
            "Per survey year, cluster (`cluster`: its line in the file) and tile it "
            "may truly be in: the probability `p` (the same that makes `survey_tiles`), the "
            "cluster's `value` and `urban` flag. `validation_grid` validates the survey per "
            "cluster from it (n = clusters), not per tile.",
        ),
    ]

    @multi_asset(partitions_def=p.country, group_name=GROUP, can_subset=False, specs=specs)
    def survey_tiles(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country = country_only(context, settings)
        keys = {"country": country.code}
        tables = {"survey_tiles": keys, "survey_clusters": keys}
        cfg = country.surveys
        if cfg is None:
            yield from not_configured(
                warehouse, country, "no survey layer (surveys: {file: ...})", tables
            )
            return
        grids = {y: _grid(warehouse, country, y) for y in country.years}
        d = cfg.displacement
        rule = surveys_lib.Displacement(d.urban_km, d.rural_km, d.rural_far_share, d.rural_far_km)
        points = surveys_lib.read_surveys(
            country.layer_file("surveys", cfg.file),
            value=cfg.value,
            year=cfg.year,
            urban=cfg.urban,
            weight=cfg.weight,
            lon=cfg.lon,
            lat=cfg.lat,
            bounds_3857=surveys_lib.grid_bounds(next(iter(grids.values()))),
            years=country.years,
        )
        frames = surveys_lib.survey_tables(
            points,
            grids,
            rule if cfg.handling == "expectation" else None,
            min_mass=cfg.min_mass if cfg.handling == "expectation" else 0.0,
            inhabited_prior=cfg.inhabited_prior and cfg.handling == "expectation",
        )
        rows = {}
        for table, frame in zip(tables, frames, strict=True):
            frame.insert(0, "name", cfg.name)
            frame.insert(0, "country", country.code)
            rows[table] = warehouse.write(table, frame, keys)
        meta = {
            "status": "ok",
            "clusters": len(points),
            "handling": cfg.handling,
            "years": ", ".join(map(str, sorted(points["year"].unique()))),
        }
        for table, n in rows.items():
            yield MaterializeResult(asset_key=table, metadata={**meta, "rows": n})

    return [survey_tiles]
