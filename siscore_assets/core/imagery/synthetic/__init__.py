"""The embedded synthetic country ``SYN``: a deterministic, offline stand-in for real imagery.

A pure function of :class:`SyntheticSpec`, split by concept:

- ``spec``: the spec and the constants other modules rely on (land-cover codes, thresholds);
- ``noise``: smooth noise, lattice hashing, the built fraction shared by pixels and truth;
- ``render``: :class:`TileRenderer`, tiles from land cover and built fraction;
- ``geography``: terrain, seats, roads, special places and land cover, built once per spec;
- ``training``: the soft-labelled pretraining set and simulated annotators;
- ``world``: :class:`SyntheticCountry`, development per year, imagery and truth tables;
- ``variant``: :class:`ChangeVariant`, SYN with more change, still and declining places and
  real-sample-like year nuisance (:class:`YearNuisance`), for the change benchmark.

Importers use this package; the names below are its public surface.
"""

from siscore_assets.core.imagery.synthetic.noise import built_fraction, floors_for
from siscore_assets.core.imagery.synthetic.render import REAL_LIKE, TileRenderer, YearNuisance
from siscore_assets.core.imagery.synthetic.spec import (
    ANNOTATOR_ROLES,
    EDZ_RADIUS_KM,
    EDZ_TYPES,
    FOREST,
    LAND_COVER_NAMES,
    MOUNTAIN,
    NEAR_MINE_KM,
    NIGHTLIGHT_MAX,
    NIGHTLIGHT_THRESHOLD,
    POI_KINDS,
    PRETRAIN_CLASSES,
    SETTLED,
    URBAN_THRESHOLD,
    WATER,
    SyntheticSpec,
)
from siscore_assets.core.imagery.synthetic.variant import ChangeVariant
from siscore_assets.core.imagery.synthetic.world import SyntheticCountry

__all__ = [
    "ANNOTATOR_ROLES",
    "ChangeVariant",
    "EDZ_RADIUS_KM",
    "EDZ_TYPES",
    "FOREST",
    "LAND_COVER_NAMES",
    "MOUNTAIN",
    "NEAR_MINE_KM",
    "NIGHTLIGHT_MAX",
    "NIGHTLIGHT_THRESHOLD",
    "POI_KINDS",
    "PRETRAIN_CLASSES",
    "REAL_LIKE",
    "SETTLED",
    "SyntheticCountry",
    "SyntheticSpec",
    "TileRenderer",
    "URBAN_THRESHOLD",
    "WATER",
    "YearNuisance",
    "built_fraction",
    "floors_for",
]
