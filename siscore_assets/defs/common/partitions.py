"""Partitions built from the countries file, and the mappings every cross-partition read declares.

Dagster's multi-partitions are a full cross product, so a registry where one country has
2016-2019 and another 2018-2019 would create keys like ``PRK|2016`` that fail at run time.
Instead the yearly key set is static and flat: exactly the configured ``country|year`` pairs
(the same strings a two-dimensional key printed), and every dependency between a ``country``
asset and a ``country|year`` asset names its :class:`StaticPartitionMapping`.

Each annotator's POG is its own partition, ``country|annotator`` (e.g. ``PRK|annotator_3``), of
a dynamic partitioning: annotators come and go with the files in a country's annotation folder,
so the keys are added (and removed) at run time, by ``annotation_inputs`` and by the annotation
sensor, never made up for a country that has no such annotator.  Dagster has no partition
mapping between a dynamic and a static partitioning (custom mappings are unsupported), so those
dependencies are declared with :class:`AllPartitionMapping`; the country's readers take only
their own country's annotators, and the sensor requests exactly the partitions a change touches.

Code that has only the loaded assets tells the three partitionings apart with
:func:`partition_kind`, and reads the configured years back with :func:`loaded_years`.  A
sensor or schedule that finds a change of a partition the loaded definitions lack (the
countries file changed after the code location loaded) requests nothing for it
(:func:`split_loaded`), keeps it new for after the reload (:func:`keep_unloaded`) and says so
(:func:`reload_note`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    DynamicPartitionsDefinition,
    StaticPartitionMapping,
    StaticPartitionsDefinition,
)

from siscore_assets.core.countries import CountryRegistry, UnknownPartitionError

SEPARATOR = "|"
#: The dynamic partitioning of annotators' POGs: keys ``country|annotator``.
ANNOTATORS = "country_annotator"
#: The kinds of partitioning (:func:`partition_kind`), as ``siscore run`` names its waves.
COUNTRY, YEARLY, ANNOTATOR = "country", "yearly", "annotator"
#: What to do about a partition the loaded definitions lack.
RELOAD = "reload the code location (the countries file changed after it loaded)"


def country_year_key(country: str, year: int | str) -> str:
    """The partition key of one configured country-year, e.g. ``SYN|2016``."""
    return f"{country}{SEPARATOR}{year}"


def split_country_year(key: str) -> tuple[str, int]:
    """``SYN|2016`` -> ("SYN", 2016); anything else is a clear error."""
    country, sep, year = str(key).partition(SEPARATOR)
    if not sep or not year.isdigit():
        raise UnknownPartitionError(f"not a country{SEPARATOR}year partition key: {key!r}")
    return country, int(year)


def country_annotator_key(country: str, annotator: str) -> str:
    """The partition key of one annotator's POG, e.g. ``PRK|annotator_3``."""
    return f"{country}{SEPARATOR}{annotator}"


def split_country_annotator(key: str) -> tuple[str, str]:
    """``PRK|annotator_3`` -> ("PRK", "annotator_3"); anything else is a clear error."""
    country, sep, annotator = str(key).partition(SEPARATOR)
    if not sep or not country or not annotator:
        raise UnknownPartitionError(f"not a country{SEPARATOR}annotator partition key: {key!r}")
    return country, annotator


def registered_annotators(instance: DagsterInstance, country: str) -> list[str]:
    """The annotators of ``country`` that have a POG partition, sorted by name."""
    prefix = country + SEPARATOR
    return sorted(
        k[len(prefix) :]
        for k in instance.get_dynamic_partitions(ANNOTATORS)
        if k.startswith(prefix)
    )


def annotator_changes(
    instance: DagsterInstance, country: str, names: list[str]
) -> tuple[list[str], list[str]]:
    """The partition keys to add and to remove so that ``country``'s annotator partitions are
    exactly ``names``."""
    have = set(registered_annotators(instance, country))
    add = [country_annotator_key(country, n) for n in sorted(set(names) - have)]
    drop = [country_annotator_key(country, n) for n in sorted(have - set(names))]
    return add, drop


def sync_annotators(
    instance: DagsterInstance, country: str, names: list[str]
) -> tuple[list[str], list[str]]:
    """Make ``country``'s annotator partitions exactly ``names``; returns the keys added and
    removed."""
    add, drop = annotator_changes(instance, country, names)
    if add:
        instance.add_dynamic_partitions(ANNOTATORS, add)
    for key in drop:
        instance.delete_dynamic_partition(ANNOTATORS, key)
    return add, drop


def partition_kind(asset: AssetsDefinition) -> str:
    """How ``asset`` is partitioned: :data:`ANNOTATOR` (``country|annotator``, dynamic),
    :data:`YEARLY` (``country|year``) or :data:`COUNTRY` (anything else)."""
    if isinstance(asset.partitions_def, DynamicPartitionsDefinition):
        return ANNOTATOR
    keys = asset.partitions_def.get_partition_keys() if asset.partitions_def else []
    return YEARLY if keys and SEPARATOR in keys[0] else COUNTRY


def loaded_years(assets: Iterable[AssetsDefinition]) -> dict[str, tuple[int, ...]]:
    """Each country's configured years, sorted, as the loaded yearly partitions hold them: the
    :attr:`Partitions.years_of` they were made from, for code that has only the assets."""
    for a in assets:
        if isinstance(a, AssetsDefinition) and partition_kind(a) == YEARLY:
            years: dict[str, list[int]] = {}
            for key in a.partitions_def.get_partition_keys():
                country, year = split_country_year(key)
                years.setdefault(country, []).append(year)
            return {c: tuple(sorted(ys)) for c, ys in years.items()}
    return {}


def split_loaded(keys: Iterable[str], loaded: Collection[str]) -> tuple[list[str], list[str]]:
    """``keys`` (in order) split into those the loaded definitions have and those they lack (the
    countries file changed after the code location loaded: reloading it adds them)."""
    keys = list(keys)
    return [k for k in keys if k in loaded], [k for k in keys if k not in loaded]


def keep_unloaded(
    current: Mapping[str, object], before: Mapping[str, object], unloaded: Collection[str]
) -> dict:
    """``current`` (a sensor's fingerprints by key) to record in the cursor, an ``unloaded`` key
    with its earlier fingerprint: after the reload it is still new."""
    return {k: (before.get(k) if k in unloaded else fp) for k, fp in current.items()}


def reload_note(what: str, unloaded: Iterable[str], verdict: str) -> str:
    """``<what> of <keys> <verdict>: reload the code location ...``, naming the ``unloaded``
    keys; "" when there are none."""
    unloaded = list(unloaded)
    return f"{what} of {', '.join(unloaded)} {verdict}: {RELOAD}" if unloaded else ""


@dataclass(frozen=True)
class Partitions:
    """The two partitionings and the dependency helpers the wiring uses to declare reads."""

    country: StaticPartitionsDefinition
    country_year: StaticPartitionsDefinition
    years_of: dict[str, tuple[int, ...]]
    country_annotator: DynamicPartitionsDefinition = DynamicPartitionsDefinition(name=ANNOTATORS)

    def year_keys(self, country: str) -> list[str]:
        return [country_year_key(country, y) for y in self.years_of[country]]

    def from_country(self, asset: str | AssetKey) -> AssetDep:
        """A yearly asset reading a country asset: each year reads its country."""
        return AssetDep(
            asset,
            partition_mapping=StaticPartitionMapping({c: self.year_keys(c) for c in self.years_of}),
        )

    def from_years(self, asset: str | AssetKey) -> AssetDep:
        """A country asset reading a yearly asset: the country reads all its years."""
        return AssetDep(
            asset,
            partition_mapping=StaticPartitionMapping(
                {k: c for c in self.years_of for k in self.year_keys(c)}
            ),
        )

    def from_first_year(self, asset: str | AssetKey) -> AssetDep:
        """A country asset reading a yearly asset's first configured year only: a later year
        does not change what it reads (the yearly refresh still re-runs every country-level
        reader of the scores: ``orchestration.followup``)."""
        return AssetDep(
            asset,
            partition_mapping=StaticPartitionMapping(
                {self.year_keys(c)[0]: c for c in self.years_of if self.years_of[c]}
            ),
        )

    def across_annotators(self, asset: str | AssetKey) -> AssetDep:
        """A read between a ``country`` asset and the ``country|annotator`` partitions (either
        way): declared over all partitions (see the module docstring), read for one country."""
        return AssetDep(asset, partition_mapping=AllPartitionMapping())

    def same(self, asset: str | AssetKey) -> AssetDep:
        """A read of the same partition (same partitioning on both sides)."""
        return AssetDep(asset)

    def with_previous_and_base(self, asset: str | AssetKey) -> AssetDep:
        """A yearly asset reading its own year, the previous configured year and the first
        (base) year of the same yearly asset: change maps."""
        downstream: dict[str, set[str]] = {}
        for c, years in self.years_of.items():
            for i, y in enumerate(years):
                key = country_year_key(c, y)
                downstream.setdefault(key, set()).add(key)
                if i + 1 < len(years):
                    downstream[key].add(country_year_key(c, years[i + 1]))
                if i == 0:
                    downstream[key].update(country_year_key(c, later) for later in years)
        return AssetDep(
            asset,
            partition_mapping=StaticPartitionMapping({k: sorted(v) for k, v in downstream.items()}),
        )


def make_partitions(registry: CountryRegistry) -> Partitions:
    years_of = {code: tuple(registry.get(code).years) for code in registry.codes}
    country = StaticPartitionsDefinition(registry.codes)
    country_year = StaticPartitionsDefinition(
        [country_year_key(c, y) for c in registry.codes for y in years_of[c]]
    )
    return Partitions(country=country, country_year=country_year, years_of=years_of)
