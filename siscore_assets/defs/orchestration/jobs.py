"""Jobs by partitioning: what is learned once per country, and what is refreshed every year."""

from __future__ import annotations

from dagster import AssetKey, AssetSelection, define_asset_job

from ..common.partitions import Partitions


def build_jobs(
    p: Partitions, country_assets: list[AssetKey], yearly_assets: list[AssetKey]
) -> dict:
    yearly = define_asset_job(
        "yearly_refresh",
        selection=AssetSelection.assets(*yearly_assets),
        description="Everything yearly for one country-year: granules -> patches -> habitation -> "
        "siScore -> rasters, change, districts, validation. Uses the country's trained models.",
    )
    country = define_asset_job(
        "country_models",
        selection=AssetSelection.assets(*country_assets),
        description="What is learned once per country: pretraining, clusters, POGs, ensemble, "
        "scorer, plus districts, covariates and the regression.",
    )
    return {"yearly_refresh": yearly, "country_models": country}
