"""Imagery sources named in the countries file, turned into objects the stages can use."""

from __future__ import annotations

from functools import lru_cache

from siscore_assets.core.countries import CountryConfig, CountryConfigError, SyntheticSource


def _synthetic(country: CountryConfig) -> SyntheticSource:
    if not isinstance(country.source, SyntheticSource):
        raise CountryConfigError(f"country {country.code} is not synthetic")
    return country.source


def synthetic_spec(country: CountryConfig):  # -> SyntheticSpec (imported lazily: heavy deps)
    from siscore_assets.core.imagery.synthetic import SyntheticSpec

    args = _synthetic(country).model_dump(include=set(SyntheticSpec.__dataclass_fields__))
    return SyntheticSpec(z=country.zoom, years=tuple(country.years), **args)


@lru_cache(maxsize=8)
def _cached_country(spec):  # SyntheticSpec is frozen, hence hashable
    from siscore_assets.core.imagery.synthetic import SyntheticCountry

    return SyntheticCountry(spec)


def synthetic_country(country: CountryConfig):
    """The deterministic synthetic world for a country entry (cached per spec)."""
    return _cached_country(synthetic_spec(country))


def granule_tiles(country: CountryConfig) -> int:
    return _synthetic(country).granule_tiles


def pretrain_images(country: CountryConfig) -> int:
    return _synthetic(country).pretrain_images


def max_cloud_fraction(country: CountryConfig) -> float:
    from siscore_assets.core.imagery.patches import DEFAULT_MAX_CLOUD

    value = country.source.max_cloud_fraction
    return DEFAULT_MAX_CLOUD if value is None else value


def synthetic_edz_types() -> tuple[str, ...]:
    """The synthetic country's economic-development-zone types (one dummy each)."""
    from siscore_assets.core.imagery.synthetic import EDZ_TYPES

    return tuple(EDZ_TYPES)


def store_px(country: CountryConfig) -> int | None:
    """``source.store_px``: the size tiles are kept at in the tile store (the models' input size
    for a large country: 400,000 tiles at 256 px are 78 GB); unset or ``native``: as read."""
    return country.source.store_px


def block_zoom(country: CountryConfig) -> int:
    """``source.block_zoom``: tiles of one parent tile at this zoom form one block (default 9: at
    most 1,024)."""
    from siscore_assets.core.imagery.tile_blocks import DEFAULT_BLOCK_ZOOM

    zoom = country.source.block_zoom or DEFAULT_BLOCK_ZOOM
    if zoom > country.zoom:
        raise CountryConfigError(
            f"country {country.code}: source.block_zoom {zoom} is above the grid's zoom "
            f"{country.zoom}"
        )
    return zoom
