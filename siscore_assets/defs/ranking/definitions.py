"""Ranking's objects: POGs, the ensemble, the annotation kit and the sensor that re-runs them."""

from dagster import Definitions

from siscore_assets.core.countries import CountryRegistry

from ..common.partitions import Partitions
from . import assets, kit, labels, sensors


def build(p: Partitions, registry: CountryRegistry) -> Definitions:
    return Definitions(
        assets=[*assets.build(p, registry), *kit.build(p), *labels.build(p)],
        sensors=[sensors.build_annotation_sensor(p), labels.build_label_sensor(p)],
    )
