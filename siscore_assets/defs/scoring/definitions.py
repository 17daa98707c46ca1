"""Scoring's objects: the rank scorer, yearly siScore, Grad-CAM."""

from dagster import Definitions

from siscore_assets.core.countries import CountryRegistry

from ..common.partitions import Partitions
from . import assets, granules


def build(p: Partitions, registry: CountryRegistry) -> Definitions:
    return Definitions(assets=[*assets.build(p, registry), *granules.build(p)])
