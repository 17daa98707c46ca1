"""Ingest's objects: imagery, ground layers, districts, covariates, imported files."""

from dagster import Definitions

from ..common.partitions import Partitions
from . import assets, imported, stac


def build(p: Partitions) -> Definitions:
    return Definitions(assets=[*assets.build(p), *stac.build(p), *imported.build(p)])
