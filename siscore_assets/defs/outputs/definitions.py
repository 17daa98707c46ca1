"""Outputs' objects: maps, district tables, validation, baselines, the regression."""

from dagster import Definitions

from ..common.partitions import Partitions
from . import analysis, maps


def build(p: Partitions) -> Definitions:
    return Definitions(assets=[*maps.build(p), *analysis.build(p)])
