"""Outputs' objects: maps, district tables, validation, baselines, the regression."""

from dagster import Definitions

from ..common.partitions import Partitions
from . import analysis, indicators, maps, surveys
from . import change as change_outputs
from . import web as web_outputs


def build(p: Partitions) -> Definitions:
    return Definitions(
        assets=[*maps.build(p), *analysis.build(p), *indicators.build(p), *web_outputs.build(p)]
        + surveys.build(p)
        + change_outputs.build(p)
    )
