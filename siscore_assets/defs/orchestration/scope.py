"""Which assets read the scores, which are the learned models, and so what a run of some years
must run besides those years' yearly assets.

Every year's `siscore_grid` reads every configured year (the radiometric reference is the
median of all years' fits; a place is kept when it is inhabited in any year), so a run that
changes one year's imagery moves every year's scores a little: it re-runs `siscore_grid` and
what reads it for every year that has scores, not only its own.  The learned models (the
pretraining set, the habitation network, the clusters, the POGs, the ensemble, the scorer and
the baseline rankers) are kept unless asked for (``siscore run --refit``): re-clustering would
renumber what annotators ranked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dagster import AssetKey, AssetsDefinition, DagsterInstance

from ..common.partitions import YEARLY, country_year_key, loaded_years, partition_kind

#: The yearly product: what a change of any year's imagery moves for every year.
YEARLY_SCORES = AssetKey("siscore_grid")


def _graph(assets: Iterable[AssetsDefinition]) -> dict[AssetKey, set[AssetKey]]:
    """Each asset key's declared upstream keys."""
    return {
        spec.key: {d.asset_key for d in spec.deps}
        for a in assets
        if isinstance(a, AssetsDefinition)
        for spec in a.specs
    }


def score_readers(
    assets: Sequence[AssetsDefinition], of: AssetKey = YEARLY_SCORES
) -> set[AssetKey]:
    """``of`` and every asset that reads it, directly or through other assets."""
    upstream = _graph(assets)
    reached, grew = {of}, True
    while grew:
        grew = False
        for key, ups in upstream.items():
            if key not in reached and ups & reached:
                reached.add(key)
                grew = True
    return reached


def ancestors(assets: Sequence[AssetsDefinition], of: AssetKey = YEARLY_SCORES) -> set[AssetKey]:
    """Every asset ``of`` reads, directly or through other assets (not ``of`` itself)."""
    upstream = _graph(assets)
    out: set[AssetKey] = set()
    todo = list(upstream.get(of, ()))
    while todo:
        key = todo.pop()
        if key not in out:
            out.add(key)
            todo.extend(upstream.get(key, ()))
    return out


def learned_models(assets: Sequence[AssetsDefinition]) -> set[AssetKey]:
    """The keys of the assets a run of some years keeps unless re-fitting: every asset that is
    not yearly and that the scores are computed from, or that carries a learned code version
    (the baseline rankers); a multi-asset counts whole."""
    below = ancestors(assets)
    out: set[AssetKey] = set()
    for a in assets:
        if not isinstance(a, AssetsDefinition) or partition_kind(a) == YEARLY:
            continue
        versioned = any(v is not None for v in a.code_versions_by_key.values())
        if versioned or set(a.keys) & below:
            out |= set(a.keys)
    return out


def materialised(instance: DagsterInstance, key: AssetKey) -> set[str]:
    """The partitions of ``key`` materialised at least once."""
    return set(instance.get_materialized_partitions(key))


def scored_years(instance: DagsterInstance, country: str, years: Iterable[int]) -> list[int]:
    """The ``years`` of ``country`` whose scores (`siscore_grid`) were ever materialised: the
    ones a change of another year's imagery must refresh."""
    done = materialised(instance, YEARLY_SCORES)
    return [y for y in years if country_year_key(country, y) in done]


@dataclass(frozen=True)
class Scope:
    """What a `siscore run` covers: ``partial`` (``--years``) runs the asked years' yearly
    assets, the score readers of every scored year and the country-level assets that are not
    learned models (and any never materialised); ``refit`` re-runs the models too."""

    partial: bool = False
    refit: bool = False


#: Every asset, every year asked (``siscore run`` without ``--years``).
WHOLE_RUN = Scope()


@dataclass(frozen=True)
class Selection:
    """Per asset key: a score reader, a learned model (sets of keys)."""

    readers: frozenset[AssetKey]
    models: frozenset[AssetKey]

    @classmethod
    def of(cls, assets: Sequence[AssetsDefinition]) -> Selection:
        return cls(frozenset(score_readers(assets)), frozenset(learned_models(assets)))


def yearly_runs(
    keys: Sequence[AssetKey],
    country: str,
    asked: Sequence[int],
    scored: Sequence[int],
    selection: Selection,
) -> list[tuple[str, tuple[AssetKey, ...]]]:
    """A yearly wave's runs: every asset for the asked years; for the other scored years, the
    wave's score readers only (none: no run)."""
    readers = tuple(k for k in keys if k in selection.readers)
    runs = [(country_year_key(country, y), tuple(keys)) for y in asked]
    if readers:
        runs += [(country_year_key(country, y), readers) for y in scored if y not in asked]
    return runs


def country_keys(
    wave_assets: Sequence[AssetsDefinition],
    country: str,
    selection: Selection,
    done: dict[AssetKey, set[str]],
) -> tuple[AssetKey, ...]:
    """A country wave's assets a partial run runs: all but the learned models, and a model too
    when it was never materialised for ``country`` (a first run keeps nothing); ``done``: each
    key's materialised partitions."""
    out: list[AssetKey] = []
    for a in wave_assets:
        keys = list(a.keys)
        model = any(k in selection.models for k in keys)
        first = any(country not in done.get(k, set()) for k in keys)
        if not model or first:
            out += keys
    return tuple(out)


def configured_years(assets: Sequence[AssetsDefinition], country: str) -> list[int]:
    """``country``'s configured years, as the loaded yearly partitions hold them."""
    return list(loaded_years(assets).get(country, ()))


@dataclass(frozen=True)
class PartialRun:
    """The runs of a partial `siscore run` (``--years``), wave by wave."""

    country: str
    asked: tuple[int, ...]
    scored: tuple[int, ...]
    selection: Selection
    by_key: dict[AssetKey, AssetsDefinition]
    refit: bool

    @classmethod
    def start(
        cls,
        instance: DagsterInstance,
        assets: Sequence[AssetsDefinition],
        country: str,
        years: Sequence[int],
        scope: Scope,
    ) -> PartialRun | None:
        """None for a whole run; the years with scores are looked up once, before any run."""
        if not scope.partial:
            return None
        assets = [a for a in assets if isinstance(a, AssetsDefinition)]
        return cls(
            country,
            tuple(years),
            tuple(scored_years(instance, country, configured_years(assets, country))),
            Selection.of(assets),
            {k: a for a in assets for k in a.keys},
            scope.refit,
        )

    def runs(
        self, instance: DagsterInstance, yearly: bool, keys: Sequence[AssetKey]
    ) -> dict[str, tuple[AssetKey, ...]]:
        """Partition key -> the assets of the wave ``keys`` to run there (empty: none)."""
        if yearly:
            return dict(yearly_runs(keys, self.country, self.asked, self.scored, self.selection))
        if self.refit:
            return {self.country: tuple(keys)}
        wave_assets = list({id(self.by_key[k]): self.by_key[k] for k in keys}.values())
        done = {k: materialised(instance, k) for k in keys}
        chosen = country_keys(wave_assets, self.country, self.selection, done)
        return {self.country: chosen} if chosen else {}

    def first_annotators(
        self, instance: DagsterInstance, keys: Sequence[AssetKey], partitions: Sequence[str]
    ) -> list[str]:
        """The annotator partitions to run: all with ``refit``, else those never materialised."""
        if self.refit:
            return list(partitions)
        done = {k: materialised(instance, k) for k in keys}
        return [p for p in partitions if any(p not in done[k] for k in keys)]
