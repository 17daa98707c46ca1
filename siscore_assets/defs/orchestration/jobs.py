"""Jobs by partitioning: what is learned once per country, and what is refreshed every year."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from ..partitions import Partitions

COUNTRY_GROUPS = ("stage1_clusters", "stage2_ranking", "stage3_scoring", "ingest", "outputs")


def build_jobs(p: Partitions, country_assets: list[str], yearly_assets: list[str]) -> dict:
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
