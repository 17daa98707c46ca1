"""The ``source: {kind: stac, ...}`` block of the countries file: its settings and every rule on them.

The rules live beside the countries file, not with the imagery code, so a wrong value is found when
the file loads and reported at its line (``countries.py``), while ``core/imagery/stac/config.py``
builds on the same parser when it reads the imagery: one copy of each rule.  Every setting has a
default that works against a public Sentinel-2 L2A STAC API (Earth Search, Planetary Computer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

DEFAULT_BANDS = ("B04", "B03", "B02")
OPTIONAL_BANDS = ("B08",)
RESAMPLING = ("nearest", "bilinear", "cubic")
SIGNERS = ("none", "planetary_computer")
# Asset keys tried per band: Planetary Computer uses the band names, Earth Search v1 colour names.
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "B04": ("B04", "red"),
    "B03": ("B03", "green"),
    "B02": ("B02", "blue"),
    "B08": ("B08", "nir"),
    "SCL": ("SCL", "scl"),
}


@dataclass(frozen=True)
class StacSource:
    """A STAC imagery source: where to search, what to keep, how to read."""

    api: str
    collection: str = "sentinel-2-l2a"
    aoi: str | None = None  # a GeoJSON polygon file (lon/lat); else ``bbox``
    bbox: tuple[float, float, float, float] | None = None
    season: tuple[str, str] | None = None  # ("MM-DD", "MM-DD"); None = the whole year
    max_scene_cloud: float = 50.0  # eo:cloud_cover (%) above which a scene is rejected
    scl_candidates: int = 4  # least-cloudy scenes per granule whose SCL is read to rank them
    bands: tuple[str, ...] = DEFAULT_BANDS
    stretch_max: int = 3000  # harmonised DN (reflectance x 10,000) mapped to 255; 0 stays 0
    resampling: str = "nearest"
    tile_px: int = 256
    threads: int = 4
    chunk_tiles: int = 16  # tiles read per task (one open of each COG per task)
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 1.0
    page_size: int = 100
    sign: str = "none"
    resign_after_s: float = 1800.0  # signed URLs last ~45 min on Planetary Computer
    asset_keys: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ASSET_KEYS))
    #: The reproduction's granule patching beside the grid: (patches per side, px), e.g. (32, 343)
    #: cuts a 10,980 px granule into 1,024 patches of 343 px (the last 4 px dropped); None: off.
    granule_patches: tuple[int, int] | None = None

    def season_window(self, year: int) -> tuple[date, date]:
        """The year's search window: the season's dates, else the whole year.  A season that
        wraps the new year (``[11-01, 03-31]``, a leaf-off winter) is the one ending in ``year``."""
        if self.season is None:
            return date(year, 1, 1), date(year, 12, 31)
        first, last = self.season
        wraps = last < first  # MM-DD strings order as dates
        return date.fromisoformat(f"{year - wraps}-{first}"), date.fromisoformat(f"{year}-{last}")

    def season_centre(self, year: int) -> date:
        start, end = self.season_window(year)
        return start + (end - start) / 2

    def datetime_range(self, year: int) -> str:
        start, end = self.season_window(year)
        return f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"


# The stac block's numeric settings and their ranges (high None: unbounded); the type is the default's.
_NUMBERS: dict[str, tuple[float, float | None]] = {
    "max_scene_cloud": (0.0, 100.0),
    "scl_candidates": (1, None),
    "stretch_max": (1, None),
    "tile_px": (8, None),
    "threads": (1, 64),
    "chunk_tiles": (1, None),
    "timeout_s": (0.1, None),
    "retries": (0.0, None),
    "backoff_s": (0.0, None),
    "page_size": (1, None),
    "resign_after_s": (1.0, None),
}


GRANULE_PATCHES = (32, 343)  # the reproduction's: 32 x 32 patches of 343 px per 10,980 px granule


class StacBlockError(ValueError):
    """One wrong value of a stac block: ``keys`` is its path in the country's entry (``("source",
    "api")``, or ``("bbox",)`` for the country's own bbox), so each reader can locate it its way."""

    def __init__(self, keys: tuple[str, ...], problem: str) -> None:
        self.keys, self.problem = keys, problem
        super().__init__(problem)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _season(raw: Any) -> tuple[str, str] | None:
    """``[MM-DD, MM-DD]`` (a StacBlockError otherwise; an end before the start wraps the new
    year); None: the whole year.  29 February is refused: not every year has one."""
    if raw is None:
        return None
    wrong = StacBlockError(
        ("source", "season"), f"source.season must be [MM-DD, MM-DD], got {raw!r}"
    )
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise wrong
    season = (str(raw[0]), str(raw[1]))
    try:
        for day in season:
            if len(day) != 5:
                raise ValueError(day)
            date.fromisoformat(f"2001-{day}")
    except ValueError:
        raise wrong from None
    return season


def parse_stac_block(raw: Mapping[Any, Any], bbox: Any = None) -> StacSource:
    """The settings of a ``kind: stac`` source block (``bbox``: the country's, used when the block
    has none), or a :class:`StacBlockError` naming the first wrong one."""

    def fail(key: str | None, problem: str) -> StacBlockError:
        return StacBlockError(("source", key) if key else ("source",), problem)

    known = set(StacSource.__dataclass_fields__) | {"kind", "max_cloud_fraction"}
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise fail(unknown[0], f"unknown stac source setting(s) {', '.join(unknown)}")
    api = raw.get("api")
    if not isinstance(api, str) or not api.startswith(("http://", "https://")):
        raise fail("api", f"source.api must be the STAC API's http(s) URL, got {api!r}")
    collection = raw.get("collection", "sentinel-2-l2a")
    if not isinstance(collection, str) or not collection:
        raise fail(
            "collection", f"source.collection must be a STAC collection id, got {collection!r}"
        )
    box_raw = raw.get("bbox", bbox)
    if box_raw is not None:
        if (
            not isinstance(box_raw, (list, tuple))
            or len(box_raw) != 4
            or not all(map(_is_number, box_raw))
            or not (-180 <= box_raw[0] < box_raw[2] <= 180 and -90 <= box_raw[1] < box_raw[3] <= 90)
        ):
            raise StacBlockError(
                ("source", "bbox") if "bbox" in raw else ("bbox",),
                f"bbox must be [west, south, east, north] in lon/lat degrees, got {box_raw!r}",
            )
        box_raw = tuple(float(v) for v in box_raw)
    aoi = raw.get("aoi")
    if aoi is not None and (not isinstance(aoi, str) or not aoi):
        raise fail("aoi", f"source.aoi must be the path of a GeoJSON polygon file, got {aoi!r}")
    if aoi is None and box_raw is None:
        raise fail(None, "a stac source needs source.aoi (a GeoJSON polygon file) or a bbox")
    season = _season(raw.get("season"))
    bands = raw.get("bands", DEFAULT_BANDS)
    extra = bands[len(DEFAULT_BANDS) :] if isinstance(bands, (list, tuple)) else None
    if (
        extra is None
        or tuple(bands[: len(DEFAULT_BANDS)]) != DEFAULT_BANDS
        or not all(isinstance(b, str) for b in extra)
        or not set(extra) <= set(OPTIONAL_BANDS)
        or len(extra) > len(OPTIONAL_BANDS)
    ):
        raise fail("bands", f"source.bands must be [B04, B03, B02] optionally + B08, got {bands!r}")
    choices: dict[str, str] = {}
    for key, allowed in (("resampling", RESAMPLING), ("sign", SIGNERS)):
        choices[key] = str(raw.get(key, allowed[0]))
        if choices[key] not in allowed:
            raise fail(key, f"source.{key} must be one of {', '.join(allowed)}")
    asset_keys = dict(ASSET_KEYS)
    given = raw.get("asset_keys") or {}
    if not isinstance(given, Mapping):
        raise fail(
            "asset_keys", "source.asset_keys must be a mapping {band: asset key or [asset keys]}"
        )
    for band, names in given.items():
        names = [names] if isinstance(names, str) else names
        if (
            not isinstance(names, (list, tuple))
            or not names
            or not all(isinstance(n, str) and n for n in names)
        ):
            raise StacBlockError(
                ("source", "asset_keys", str(band)),
                f"source.asset_keys.{band} must be an asset key or a list of them, got {names!r}",
            )
        asset_keys[str(band)] = tuple(names)
    numbers: dict[str, Any] = {
        "granule_patches": _granule_patches(raw.get("granule_patches"), fail)
    }
    for key, (lo, hi) in _NUMBERS.items():
        default = StacSource.__dataclass_fields__[key].default
        value = raw.get(key, default)
        if not _is_number(value):
            raise fail(key, f"source.{key} must be a number, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise fail(
                key, f"source.{key} = {value} is outside [{lo}, {hi if hi is not None else 'inf'}]"
            )
        numbers[key] = type(default)(value)
    return StacSource(
        api=api.rstrip("/"),
        collection=collection,
        aoi=aoi,
        bbox=box_raw,
        season=season,
        bands=tuple(bands),
        asset_keys=asset_keys,
        **choices,
        **numbers,
    )


def _granule_patches(
    raw: Any, fail: Callable[[str | None, str], StacBlockError]
) -> tuple[int, int] | None:
    """``granule_patches``: absent / false (off), true (the reproduction's 32 x 343 px), or
    ``{per_side: N, px: P}``."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return GRANULE_PATCHES
    if isinstance(raw, Mapping) and set(raw) <= {"per_side", "px"}:
        per_side, px = raw.get("per_side", GRANULE_PATCHES[0]), raw.get("px", GRANULE_PATCHES[1])
        if (
            all(isinstance(v, int) and not isinstance(v, bool) for v in (per_side, px))
            and per_side >= 1
            and px >= 8
        ):
            return int(per_side), int(px)
    raise fail(
        "granule_patches",
        "source.granule_patches must be true, false or {per_side: N >= 1, px: P >= 8} "
        f"(the reproduction's is {{per_side: 32, px: 343}}), got {raw!r}",
    )
