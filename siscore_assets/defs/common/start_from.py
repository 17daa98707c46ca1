"""``models: start_from``: the wiring shared by `habitation_model` and `scorer` (the method is
``core/models/transfer.py``).

Lineage: Dagster refuses an asset that depends on another partition of itself unless the
partitions are time windows, so a country's `habitation_model` cannot declare the source's
`habitation_model`, nor its `scorer` the source's `scorer`.  What is declared: the country's
`scorer` reads the source country's `habitation_model` partition (:func:`habitation_dep`, a
`StaticPartitionMapping`), so the UI draws the source as upstream and marks the scorer stale
when the source's Stage 1 is re-made.  Every reused file is also recorded in the asset's
metadata by path, SHA-256 and modification time.
"""

from __future__ import annotations

from pathlib import Path

from dagster import AssetDep, MetadataValue, StaticPartitionMapping

from siscore_assets.core.countries import CountryConfig, CountryRegistry
from siscore_assets.core.models import transfer

from .resources import SiscoreSettings


def habitation_dep(registry: CountryRegistry) -> AssetDep:
    """The scorer's read of `habitation_model`: its own country's, and the source country's for
    every country that starts from another."""
    down: dict[str, list[str]] = {c: [c] for c in registry.codes}
    for code in registry.codes:
        source = registry.get(code).models.start_from
        if source in down:
            down[source].append(code)
    return AssetDep("habitation_model", partition_mapping=StaticPartitionMapping(down))


def checked_source(settings: SiscoreSettings, country: CountryConfig) -> tuple[CountryConfig, Path]:
    """The source country ``start_from`` names and its ``models/`` folder, checked (raises
    :class:`transfer.StartFromError`, one line, before anything is written)."""
    code, name = country.code, country.models.start_from
    registry = settings.registry()
    if name not in registry.codes:
        raise transfer.StartFromError(
            f"country {code}: start_from {name} is not a country of the countries file "
            f"({', '.join(registry.codes)})"
        )
    source = registry.get(name)
    folder = settings.country_dir(name) / "models"
    transfer.check_source(code, country.models, name, source.models, folder)
    return source, folder


def lineage_md(country: CountryConfig, records: dict[str, dict]) -> dict:
    """What a started country's asset reports: the source, how it was used, each reused file."""
    return {
        "start_from": country.models.start_from,
        "start_use": country.models.start_use,
        "source_checkpoints": MetadataValue.json(records),
    }
