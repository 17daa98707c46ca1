"""Scoring's objects: the rank scorer, yearly siScore, Grad-CAM, the feature-ranker baseline."""

from dagster import Definitions

from siscore_assets.core.countries import CountryRegistry

from ..common.partitions import Partitions
from . import assets, feature_baseline, granules


def build(p: Partitions, registry: CountryRegistry) -> Definitions:
    return Definitions(
        assets=[
            *assets.build(p, registry),
            *feature_baseline.build(p, registry),
            *granules.build(p),
        ]
    )
