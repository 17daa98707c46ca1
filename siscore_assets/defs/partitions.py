"""Partitions built from the countries file: ``country`` x ``year`` for everything yearly,
``country`` alone for what is learned once per country.

Dependencies between a ``country`` asset and a ``country x year`` asset need no explicit mapping:
Dagster infers the country-dimension mapping (a country partition <-> all its years).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import (
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from siscore_assets.core.countries import CountryRegistry

COUNTRY = "country"
YEAR = "year"


@dataclass(frozen=True)
class Partitions:
    country: StaticPartitionsDefinition
    year: StaticPartitionsDefinition
    country_year: MultiPartitionsDefinition


def make_partitions(registry: CountryRegistry) -> Partitions:
    country = StaticPartitionsDefinition(registry.codes)
    year = StaticPartitionsDefinition([str(y) for y in registry.all_years])
    return Partitions(country, year, MultiPartitionsDefinition({COUNTRY: country, YEAR: year}))


def country_year_key(country: str, year: int | str) -> MultiPartitionKey:
    return MultiPartitionKey({COUNTRY: country, YEAR: str(year)})
