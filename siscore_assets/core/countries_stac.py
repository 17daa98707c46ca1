"""The ``source: {kind: stac, ...}`` block of the countries file, and what every source kind shares.

The rules live beside the countries file, not with the imagery code, so a wrong value is found when
the file loads and reported at its line; ``core/imagery/stac/config.py`` reads the same model.
Every setting has a default that works against a public Sentinel-2 L2A STAC API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

DEFAULT_BANDS = ("B04", "B03", "B02")
OPTIONAL_BANDS = ("B08",)
# Asset keys tried per band: Planetary Computer uses the band names, Earth Search v1 colour names.
ASSET_KEYS: dict[str, tuple[str, ...]] = {
    "B04": ("B04", "red"),
    "B03": ("B03", "green"),
    "B02": ("B02", "blue"),
    "B08": ("B08", "nir"),
    "SCL": ("SCL", "scl"),
}
GRANULE_PATCHES = (32, 343)  # the reproduction's: 32 x 32 patches of 343 px per 10,980 px granule
#: Strict scalars (YAML's ``true`` is no number, ``"5"`` no integer); a tuple field declared with
#: ``Field(strict=False)`` takes the YAML list.
STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class SettingError(ValueError):
    """A wrong value a validator found; ``keys`` is its path below the field, so the countries
    file's error points at the very line (``covariates.mine``, ``asset_keys.B04``)."""

    def __init__(self, problem: str, keys: Sequence[Any] = ()) -> None:
        self.problem, self.keys = problem, tuple(keys)
        super().__init__(problem)


def rule(ok: Callable[[Any], Any], wanted: str, then: Callable[[Any], Any] = lambda v: v) -> Any:
    """A validator of the raw value: ``must be <wanted>, got ...`` unless ``ok(value)``, then
    ``then(value)`` (the YAML value as the field keeps it)."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise SettingError(f"must be {wanted}, got {value!r}")
        return then(value)

    return BeforeValidator(check)


def _numbers(values: Any, n: int) -> bool:
    ok = isinstance(values, (list, tuple)) and len(values) == n
    return ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _lonlat(b: Any) -> bool:
    return b is None or (_numbers(b, 4) and -180 <= b[0] < b[2] <= 180 and -90 <= b[1] < b[3] <= 90)


def _season(s: Any) -> bool:
    """Two MM-DD days (an end before the start wraps the new year); never 29 February."""
    try:
        pair = isinstance(s, (list, tuple)) and len(s) == 2
        return s is None or pair and all(len(d) == 5 and date.fromisoformat(f"2001-{d}") for d in s)
    except (TypeError, ValueError):
        return False


def _bands(b: Any) -> bool:
    extra = b[len(DEFAULT_BANDS) :] if isinstance(b, (list, tuple)) else None
    return (
        extra is not None
        and tuple(b[: len(DEFAULT_BANDS)]) == DEFAULT_BANDS
        and all(isinstance(x, str) and x in OPTIONAL_BANDS for x in extra)
        and len(set(extra)) == len(extra)
    )


def _asset_keys(given: Any) -> dict[str, tuple[str, ...]]:
    """The bands given extend the defaults; one asset key or a list tried in order."""
    if not isinstance(given or {}, Mapping):
        raise SettingError("must be a mapping {band: asset key or [asset keys]}")
    keys = dict(ASSET_KEYS)
    for band, names in (given or {}).items():
        names = [names] if isinstance(names, str) else names
        ok = isinstance(names, (list, tuple)) and all(isinstance(n, str) and n for n in names)
        if not ok or not names:
            raise SettingError(f"must be an asset key or a list of them, got {names!r}", [band])
        keys[str(band)] = tuple(names)
    return keys


def _granule_patches(raw: Any) -> Any:
    """Absent / false: off; true: the reproduction's 32 x 343 px; ``{per_side: N, px: P}``."""
    if raw is None or raw is False or raw is True:
        return GRANULE_PATCHES if raw else None
    pair = raw  # a tuple: this model's own value, validated again
    if isinstance(raw, Mapping) and set(raw) <= {"per_side", "px"}:
        pair = (raw.get("per_side", 32), raw.get("px", 343))
    whole = isinstance(pair, tuple) and len(pair) == 2 and all(type(v) is int for v in pair)
    if whole and pair[0] >= 1 and pair[1] >= 8:
        return pair
    raise SettingError(
        "must be true, false or {per_side: N >= 1, px: P >= 8} "
        f"(the reproduction's is {{per_side: 32, px: 343}}), got {raw!r}"
    )


def _http(v: Any) -> bool:
    return isinstance(v, str) and v.startswith(("http://", "https://"))


_AOI = "the path of a GeoJSON polygon file"
BBox = Annotated[
    tuple[float, float, float, float] | None,
    rule(_lonlat, "[west, south, east, north] in lon/lat degrees", lambda b: b and tuple(b)),
]
Url = Annotated[str, rule(_http, "the STAC API's http(s) URL", lambda v: v.rstrip("/"))]
Aoi = Annotated[str | None, rule(lambda v: v is None or (isinstance(v, str) and v), _AOI)]
Season = Annotated[tuple[str, str] | None, rule(_season, "[MM-DD, MM-DD]")]
Bands = Annotated[tuple[str, ...], rule(_bands, "[B04, B03, B02] optionally + B08")]
AssetKeys = Annotated[dict[str, tuple[str, ...]], BeforeValidator(_asset_keys)]
Patches = Annotated[tuple[int, int] | None, BeforeValidator(_granule_patches)]
Native = BeforeValidator(lambda v: None if v == "native" else v)


class ImagerySource(BaseModel):
    """What every source kind may set: the cloud limit and the tile store's tile size and blocks
    (None: the reader's default; ``store_px: native`` keeps tiles as read)."""

    model_config = STRICT

    max_cloud_fraction: float | None = Field(None, ge=0, le=1)
    store_px: Annotated[int | None, Native] = Field(None, ge=1)
    block_zoom: int | None = Field(None, ge=1, le=22)


class StacSource(ImagerySource):
    """A STAC imagery source: where to search, what to keep, how to read."""

    kind: Literal["stac"] = "stac"
    api: Url = Field(None, validate_default=True)
    collection: str = Field("sentinel-2-l2a", min_length=1)
    aoi: Aoi = None  # a GeoJSON polygon file (lon/lat); else ``bbox``
    bbox: BBox = None  # the country's when the block has none
    season: Season = Field(None, strict=False)  # ("MM-DD", "MM-DD"); None = the whole year
    max_scene_cloud: float = Field(50.0, ge=0, le=100)  # eo:cloud_cover (%) rejecting a scene
    scl_candidates: int = Field(4, ge=1)  # least-cloudy scenes per granule whose SCL is read
    #: Cloudy countries (core/imagery/stac/selection.py): while the best scene read leaves more
    #: than ``aoi_clear_enough`` of the AOI (every tile, in ``tile`` mode) unusable, read the next
    #: ``scl_candidates`` scenes, over ``max_scene_cloud`` too, up to ``scl_max_candidates`` per
    #: granule; ``scene_choice: tile`` gives each tile (country zoom) its own clearest scene.
    aoi_clear_enough: float = Field(0.05, ge=0, le=1)
    scl_max_candidates: int = Field(12, ge=1)
    scene_choice: Literal["granule", "tile"] = "granule"
    bands: Bands = Field(DEFAULT_BANDS, strict=False)
    stretch_max: int = Field(3000, ge=1)  # harmonised DN (reflectance x 10,000) mapped to 255
    resampling: Literal["nearest", "bilinear", "cubic"] = "nearest"
    tile_px: int = Field(256, ge=8)
    threads: int = Field(4, ge=1, le=64)
    chunk_tiles: int = Field(16, ge=1)  # tiles read per task (one open of each COG per task)
    timeout_s: float = Field(30.0, ge=0.1)
    retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    page_size: int = Field(100, ge=1)
    sign: Literal["none", "planetary_computer"] = "none"
    resign_after_s: float = Field(1800.0, ge=1)  # signed URLs last ~45 min on Planetary Computer
    asset_keys: AssetKeys = Field(default_factory=lambda: dict(ASSET_KEYS), strict=False)
    #: The reproduction's granule patching beside the grid: (patches per side, px), e.g. (32, 343)
    #: cuts a 10,980 px granule into 1,024 patches of 343 px (the last 4 px dropped); None: off.
    granule_patches: Patches = Field(None, strict=False)
    #: Keep the per-tile read records (RGB, extra bands and the scene flag; 262 KB a 256 px
    #: tile) after the year's tile store is indexed.  Off: they are deleted then (they only
    #: resume a killed read), so a year's disk is its tile store.
    keep_tile_cache: bool = False

    @model_validator(mode="after")
    def _where(self) -> StacSource:
        if self.aoi is None and self.bbox is None:
            raise SettingError("a stac source needs source.aoi (a GeoJSON polygon file) or a bbox")
        return self

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
