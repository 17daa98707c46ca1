"""Imagery sources named in the countries file, turned into objects the stages can use."""

from __future__ import annotations

from functools import lru_cache

from siscore_assets.core.countries import CountryConfig, CountryConfigError


def synthetic_spec(country: CountryConfig):  # -> SyntheticSpec (imported lazily: heavy deps)
    from siscore_assets.core.imagery.synthetic import SyntheticSpec

    if not country.is_synthetic:
        raise CountryConfigError(f"country {country.code} is not synthetic")
    src = country.source
    known = set(SyntheticSpec.__dataclass_fields__)
    args = {k: v for k, v in src.items() if k in known}
    return SyntheticSpec(z=country.zoom, years=tuple(country.years), **args)


@lru_cache(maxsize=8)
def _cached_country(spec):  # SyntheticSpec is frozen, hence hashable
    from siscore_assets.core.imagery.synthetic import SyntheticCountry

    return SyntheticCountry(spec)


def synthetic_country(country: CountryConfig):
    """The deterministic synthetic world for a country entry (cached per spec)."""
    return _cached_country(synthetic_spec(country))


def granule_tiles(country: CountryConfig) -> int:
    return int(country.source.get("granule_tiles", 20))


def pretrain_images(country: CountryConfig) -> int:
    return int(country.source.get("pretrain_images", 600))


def max_cloud_fraction(country: CountryConfig) -> float:
    from siscore_assets.core.imagery.patches import DEFAULT_MAX_CLOUD

    return float(country.source.get("max_cloud_fraction", DEFAULT_MAX_CLOUD))


def synthetic_edz_types() -> tuple[str, ...]:
    """The synthetic country's economic-development-zone types (one dummy each)."""
    from siscore_assets.core.imagery.synthetic import EDZ_TYPES

    return tuple(EDZ_TYPES)


def _positive_int(country: CountryConfig, key: str, default: int | None) -> int | None:
    value = country.source.get(key, default)
    if value is None or value == "native":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CountryConfigError(
            f"country {country.code}: source.{key} must be a positive whole number, got {value!r}"
        )
    return int(value)


def store_px(country: CountryConfig) -> int | None:
    """``source.store_px``: the size tiles are kept at in the tile store (the models' input size
    for a large country: 400,000 tiles at 256 px are 78 GB); unset or ``native``: as read."""
    return _positive_int(country, "store_px", None)


def block_zoom(country: CountryConfig) -> int:
    """``source.block_zoom``: tiles of one parent tile at this zoom form one block (default 9: at most 1,024)."""
    from siscore_assets.core.imagery.tile_blocks import DEFAULT_BLOCK_ZOOM

    zoom = _positive_int(country, "block_zoom", DEFAULT_BLOCK_ZOOM)
    if zoom > country.zoom:
        raise CountryConfigError(
            f"country {country.code}: source.block_zoom {zoom} is above the grid's zoom {country.zoom}"
        )
    return zoom
