"""Countries as configuration: one YAML file lists every country the platform knows.

Adding a country (or a year) is an edit to the YAML, never to code; the Dagster partitions are
built from this file at load time.  The file is one pydantic schema (:class:`CountryConfig`), so
every rule is declared once and every wrong value is one line ``FILE:LINE: problem``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic as pd
import yaml
from pydantic import BaseModel, Field, ValidationError

# The source blocks, re-exported: rooms may import the countries file, not its parts.
from siscore_assets.core.countries_ground import IndicatorSettings as IndicatorSettings
from siscore_assets.core.countries_ground import SurveySettings as SurveySettings
from siscore_assets.core.countries_stac import STRICT, ImagerySource
from siscore_assets.core.countries_stac import BBox as BBox
from siscore_assets.core.countries_stac import SettingError as SettingError
from siscore_assets.core.countries_stac import StacSource as StacSource
from siscore_assets.core.model_settings import ALSO_NAMED, RENAMED
from siscore_assets.core.model_settings import ModelSettings as ModelSettings
from siscore_assets.core.storage.paths import is_safe_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for relative source roots
PACKAGED_COUNTRIES = "countries.yaml"
ENV_COUNTRIES = "SISCORE_COUNTRIES"

SOURCE_KINDS = ("synthetic", "tile_folder", "stac", "score_file")
#: The source kind of an analysis-only country: scores made elsewhere, no imagery.
SCORE_FILE = "score_file"
GENERATED = "generated"
# Stage-1 cluster sources: the encoder + k-means (default), DeepCluster, or a folder
# ``<path>/<cluster id>/*.png`` of ready-made clusters (any other value is that path).
CLUSTERS_KMEANS = "kmeans"
CLUSTERS_DEEPCLUSTER = "deepcluster"
# Stage 1's pretraining labels: ``generated`` (a synthetic country's own), a folder holding
# ``labels.csv``, or the labelling kit's merged labels of the country's own tile-years (the
# `habitation_labels` asset's file): no copy, no path to keep in step.
PRETRAIN_KIT = "kit"
# A ground layer (districts, proxies, covariates) set to "none": the country has no such layer;
# the assets that need it record that and skip instead of failing.
NONE = "none"
LAYERS = ("districts", "proxies", "covariates")


class CountryConfigError(ValueError):
    """A countries file that cannot be used; the message names the file and the entry."""


class CountriesFileError(CountryConfigError):
    """A countries-file entry that cannot be used, located for the person who edits the file:
    the message is one line, ``FILE:LINE: problem`` (``FILE: problem`` when no line is known)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


class UnknownPartitionError(ValueError):
    """A country or year that the configuration does not define."""


@dataclass(frozen=True)
class KeyLines:
    """The 1-based line of every mapping key and list item of a YAML document, by its path of
    keys (``("countries", "PRK", "years")``, list items by index), from PyYAML's node marks;
    a problem is located at the deepest of its keys the file has (a missing key: its parent)."""

    path: str
    lines: Mapping[tuple[Any, ...], int] = field(default_factory=dict)

    @classmethod
    def of_yaml(cls, text: str, path: str) -> KeyLines:
        lines: dict[tuple[Any, ...], int] = {}

        def walk(node: yaml.Node, at: tuple[Any, ...]) -> None:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    here = (*at, str(key.value))
                    lines.setdefault(here, key.start_mark.line + 1)
                    walk(value, here)
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    lines[(*at, i)] = item.start_mark.line + 1
                    walk(item, (*at, i))

        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            walk(root, ())
        return cls(path, lines)

    def line(self, keys: Sequence[Any]) -> int | None:
        """The line of ``keys``, else of its nearest enclosing key the file has (None: none)."""
        at = tuple(k if isinstance(k, int) else str(k) for k in keys)
        while at and at not in self.lines:
            at = at[:-1]
        return self.lines[at] if at else None

    def error(self, keys: Sequence[Any], problem: str) -> CountriesFileError:
        return CountriesFileError(self.path, self.line(keys), problem)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping key given twice (YAML keeps the last without a word): ``line`` is the second."""

    def __init__(self, line: int, problem: str) -> None:
        self.line, self.problem = line, problem
        super().__init__(problem)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (a key beside a merge
    ``<<: *base`` still overrides the merged one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the constructor refuses it in its own words
            line = key_node.start_mark.line + 1
            if key in first:
                raise DuplicateKeyError(
                    line, f"key '{key}' given twice (first at line {first[key]})"
                )
            first[key] = line
        return super().construct_mapping(node, deep=deep)


# How a pydantic error type reads after the key's name ("models.steps must be >= 0, got -3").
_WORDS = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "must be an integer"),
    **dict.fromkeys(("float_type", "float_parsing", "finite_number"), "must be a number"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "must be true or false"),
    **dict.fromkeys(("list_type", "tuple_type", "too_short", "too_long"), "must be a list"),
    **dict.fromkeys(("dict_type", "model_type", "model_attributes_type"), "must be a mapping"),
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be one of {expected}",
}


def _plain(value: Any) -> str:
    """A bound or choice as the file writes it: 100, not 100.0; a, b, not 'a' or 'b'."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("'", "").replace(" or ", ", ")


def explain(exc: ValidationError, at: Callable[[tuple], tuple] = tuple) -> tuple[tuple, str]:
    """(key path, one readable problem) for the first error of ``exc``: pydantic's wording
    reads as the countries file's (``models.steps must be >= 0, got -3``), unknown keys beside
    it are named together, and a union's noise becomes the ``source.kind`` rule.  ``at`` turns
    pydantic's location into the path as written in the file."""
    errors = exc.errors()
    first, kind = errors[0], errors[0]["type"]
    loc = tuple(first["loc"])
    tag = next((k for k in loc[:2] if k in SOURCE_KINDS), "stac")
    if loc[:1] == ("source",) and loc[1:2] == (tag,):
        loc = (loc[0], *loc[2:])  # the discriminated union's tag
    if kind.startswith("union_tag") or (loc == ("source",) and kind.endswith("_type")):
        return ("source", "kind"), f"source.kind must be one of {', '.join(SOURCE_KINDS)}"
    keys = at(loc)
    error = (first.get("ctx") or {}).get("error")
    if isinstance(error, SettingError):  # a validator's problem at the key it names
        keys, msg = at((*loc, *error.keys)), error.problem
    elif kind == "missing":
        return keys, f"missing required key '{'.'.join(map(str, keys))}'"
    elif kind == "extra_forbidden":
        same = [e for e in errors if e["type"] == kind and e["loc"][:-1] == first["loc"][:-1]]
        names = ", ".join(str(e["loc"][-1]) for e in same)
        section = f"{tag} source" if keys[:1] == ("source",) else ".".join(map(str, keys[:-1]))
        return keys, f"unknown {section + ' ' if section else ''}setting(s) {names}"
    elif kind in _WORDS:
        ctx = {k: _plain(v) for k, v in first.get("ctx", {}).items()}
        msg = f"{_WORDS[kind].format(**ctx)}, got {first['input']!r}"
    else:
        msg = first["msg"].removeprefix("Value error, ")
    dotted = ".".join(map(str, keys))
    if len(keys) > 1 and msg.startswith(f"{keys[-1]} "):  # names its own key: the dotted path
        return keys, f"{'.'.join(map(str, keys[:-1]))}.{msg}"
    if msg.startswith("must "):
        return keys, f"{dotted} {msg}"
    return keys, msg if not dotted or dotted in msg else f"{dotted}: {msg}"


_LAYER_FORMS = {
    "districts": "a file or a mapping {file: ..., id/province/name/population/"
    "population_density: column}",
    "proxies": "a mapping {name: raster file}",
    "covariates": "a file or a mapping {kind: file or {file: ..., type: column}}",
}


class SyntheticSource(ImagerySource):
    """The embedded synthetic country (``SyntheticSpec``'s fields, same defaults and ranges),
    with its granule size and pretraining set."""

    kind: Literal["synthetic"] = "synthetic"
    seed: int = 7
    x0: int = 13903
    y0: int = 6163
    nx: int = Field(40, ge=4)
    ny: int = Field(40, ge=4)
    tile_px: int = Field(64, ge=32, le=256)  # rendered size (the grid's 256 px: slow on a CPU)
    n_districts: int = Field(12, ge=1)
    n_provinces: int = Field(3, ge=1)
    n_annotators: int = Field(8, ge=2)
    granule_tiles: int = Field(20, ge=1)  # a granule (scene) covers granule_tiles^2 grid tiles
    pretrain_images: int = Field(600, ge=1)


class TileFolderSource(ImagerySource):
    """PNG tiles under ``<root>/<tiles>/<year>/``; ``$<root_env>``, when set, wins over ``root``
    (checked when read, by :func:`source_root`: a file may name a folder not mounted here)."""

    kind: Literal["tile_folder"] = "tile_folder"
    root: str | None = None
    root_env: str | None = None
    tiles: str = "tiles"


class ScoreFileSource(BaseModel):
    """Scores made elsewhere, no imagery (an analysis-only country): a CSV of ``tile_id``
    (``z/x/y`` or ``y_x``), ``year``, ``score`` (optionally ``inhabited``), or one GeoTIFF per year
    with ``{year}`` in the name.  The grid comes from the ids; the analysis runs on the scores
    and the imagery-bound assets report "not configured"
    (``core/analysis/score_source.py``)."""

    model_config = STRICT

    kind: Literal["score_file"] = SCORE_FILE
    file: str = Field(min_length=1)

    @property
    def is_raster(self) -> bool:
        return self.file.lower().endswith((".tif", ".tiff"))

    @pd.field_validator("file")
    @classmethod
    def _year_in_raster(cls, file: str) -> str:
        if file.lower().endswith((".tif", ".tiff")) and "{year}" not in file:
            raise SettingError("a GeoTIFF score file is one per year: put {year} in its name")
        return file


Source = Annotated[
    SyntheticSource | TileFolderSource | StacSource | ScoreFileSource,
    Field(discriminator="kind"),
]


Years = Annotated[tuple[int, ...], pd.AfterValidator(lambda years: tuple(sorted(years)))]
REGRESSORS = (
    *("dist_capital_km", "dist_provincial_km", "dist_county_km", "edz_industrial"),
    *("edz_tourism", "edz_agricultural", "near_mine", "near_nuclear"),
)


class RegressionSettings(BaseModel):
    """The regression's years (None: the country's) and terms; standard errors are clustered by a
    panel column (district_id, province, or tile_block = 4 x 4 tiles: few districts sampled)."""

    model_config = STRICT

    first_year: int | None = None
    last_year: int | None = None
    regressors: tuple[str, ...] = Field(REGRESSORS, strict=False)
    cluster: str = "district_id"


class CountryConfig(BaseModel):
    """One country's entry: imagery source, years, area, ground layers, settings.  A ground layer
    left out is 'generated' for a synthetic country and 'none' for any other."""

    model_config = STRICT

    code: str
    name: str
    years: Years = Field(strict=False)
    zoom: int = Field(14, ge=0, le=22)
    bbox: BBox = None
    source: Source
    annotations: str = GENERATED
    districts: str | dict[str, str] = GENERATED  # a file, or {file: ..., <role>: column}
    proxies: str | dict[str, str] = GENERATED  # {name: raster file}
    covariates: str | dict[str, Any] = GENERATED  # a file with `kind`, or {kind: file | ...}
    clusters: str = CLUSTERS_KMEANS
    pretrain: str = GENERATED
    models: ModelSettings = Field(default_factory=ModelSettings)
    regression: RegressionSettings = Field(default_factory=RegressionSettings)
    indicators: IndicatorSettings | None = None  # district columns the seed-004 model learns
    surveys: SurveySettings | None = None  # survey points with displaced coordinates

    @pd.model_validator(mode="before")
    @classmethod
    def _defaults(cls, raw: Any) -> Any:
        """The name defaults to the code, layers to what the source gives, stac areas to bbox."""
        if not isinstance(raw, dict):
            return raw
        src = raw.get("source")
        kind = src.get("kind") if isinstance(src, dict) else None
        layer = GENERATED if kind == "synthetic" else NONE
        out = {"name": raw.get("code"), **dict.fromkeys(LAYERS, layer), **raw}
        if kind == "stac" and "bbox" not in src and raw.get("bbox") is not None:
            out["source"] = {**src, "bbox": raw["bbox"]}
        return out

    @pd.field_validator("code", mode="before")
    @classmethod
    def _code(cls, code: Any) -> Any:
        if isinstance(code, str) and code.isalnum() and code.isupper() and is_safe_name(code):
            return code
        raise SettingError("country codes are upper-case letters/digits (e.g. PRK)")

    @pd.field_validator("years", mode="before")
    @classmethod
    def _years(cls, raw: Any, info: pd.ValidationInfo) -> Any:
        """A list, or open-ended ``{from: 2016}`` (optionally ``to:``): up to the year of the
        validation context's ``today`` (else the clock's)."""
        if isinstance(raw, dict):
            today = (info.context or {}).get("today") or date.today()
            first, last = raw.get("from"), raw.get("to", today.year)
            ints = set(raw) <= {"from", "to"} and all(type(y) is int for y in (first, last))
            if not ints or last < first:
                raise SettingError(
                    "years as a mapping is {from: YEAR} or {from: YEAR, to: YEAR >= from}"
                )
            return list(range(first, last + 1))
        if not raw or not isinstance(raw, list):
            raise SettingError("must be a non-empty list of integers or {from: YEAR}")
        for i, year in enumerate(raw):  # kept twice, a year is two partitions of one key
            if type(year) is int and year in raw[:i]:
                raise SettingError(f"year {year} listed twice", [i])
        return raw

    @pd.field_validator(*LAYERS, mode="before")
    @classmethod
    def _layer(cls, value: Any, info: pd.ValidationInfo) -> Any:
        """districts: a file or ``{file: ..., <role>: column}``; proxies: ``{name: raster}``;
        covariates: a file with a ``kind`` column or ``{kind: file | {file, type: column}}``."""
        layer = info.field_name
        form = f"{_LAYER_FORMS[layer]}, '{GENERATED}' or '{NONE}'"
        if isinstance(value, str) and value:
            if layer == "proxies" and value not in (GENERATED, NONE):
                raise SettingError(f"must be {form}, got a single path")
            return value
        if not isinstance(value, dict) or not value:
            raise SettingError(f"must be {form}")
        if layer == "districts" and not isinstance(value.get("file"), str):
            raise SettingError("districts needs 'file' (a polygon layer)")
        for key, item in value.items():
            ok = isinstance(item, str) and bool(item)
            if layer == "covariates" and isinstance(item, dict):
                ok = isinstance(item.get("file"), str) and set(item) <= {"file", "type"}
            if not ok:
                what = {"covariates": "a file or {file: ..., type: column}"}.get(
                    layer, "a file path" if layer == "proxies" or key == "file" else "a column name"
                )
                raise SettingError(f"must be {what}", [key])
        return dict(value)

    @property
    def source_kind(self) -> str:
        return self.source.kind

    @property
    def is_synthetic(self) -> bool:
        return self.source_kind == "synthetic"

    @property
    def analysis_only(self) -> bool:
        """Scores made elsewhere and no imagery: only the analysis of the scores applies."""
        return self.source_kind == SCORE_FILE

    def check_year(self, year: int) -> None:
        if year not in self.years:
            raise UnknownPartitionError(
                f"country {self.code} has no year {year} configured "
                f"(configured years: {', '.join(map(str, self.years))})"
            )

    def has_layer(self, layer: str) -> bool:
        """Whether a ground layer ('districts', 'proxies', 'covariates') is configured at all."""
        return getattr(self, layer) != NONE

    @property
    def clusters_from_folder(self) -> bool:
        return self.clusters not in (CLUSTERS_KMEANS, CLUSTERS_DEEPCLUSTER)

    def resolve(self, value: str) -> Path:
        """A configured path; ``{root}/...`` is inside the tile-folder source's root."""
        if value.startswith("{root}"):
            return source_root(self) / value[len("{root}") :].lstrip("/")
        return Path(value)

    def layer_file(self, layer: str, value: str | None = None) -> Path:
        """A ground layer's file, checked to exist: ``value`` (one file of a mapping), else the
        layer's own.  ``{root}/...`` is inside the tile-folder root; a relative path is tried
        against the working directory, then the project root (as ``source.root``)."""
        if value is None:
            spec = getattr(self, layer)
            value = str(spec["file"]) if isinstance(spec, dict) else str(spec)
        return self._existing_file(value, f"{layer} layer file")

    def score_file(self, year: int | None = None) -> Path:
        """An analysis-only country's score file (``year`` fills a GeoTIFF's ``{year}``), looked
        for like a layer file: the working directory, then the project root."""
        if not isinstance(self.source, ScoreFileSource):
            raise CountryConfigError(f"country {self.code}: source is not a score file")
        value = self.source.file
        if year is not None:
            value = value.replace("{year}", str(year))
        return self._existing_file(value, "score file")

    def _existing_file(self, value: str, what: str) -> Path:
        """``value`` as a file that exists: ``{root}/...`` inside the tile-folder root, else tried
        against the working directory, then the project root; else one line naming every try."""
        path = self.resolve(value) if value.startswith("{root}") else Path(value).expanduser()
        candidates = search_paths(path)
        for cand in candidates:
            if cand.is_file():
                return cand
        raise CountryConfigError(
            f"country {self.code}: {what} not found: {path} "
            f"(tried {', '.join(map(str, candidates))})"
        )

    def layer_options(self, layer: str) -> dict[str, Any]:
        """A ground layer's settings besides its file (``districts: {file, id: FID, ...}``)."""
        spec = getattr(self, layer)
        return {k: v for k, v in spec.items() if k != "file"} if isinstance(spec, dict) else {}

    def require_generated(self, what: str, value: object) -> None:
        """A layer set to 'generated' needs a synthetic source: a clear error otherwise."""
        if value != GENERATED or not self.is_synthetic:
            raise CountryConfigError(
                f"country {self.code}: {what} {value!r} is not supported by source "
                f"'{self.source_kind}' yet (only synthetic countries generate their own {what})"
            )

    def annotation_folder(self, data_root: Path) -> Path:
        if self.annotations == GENERATED:
            return data_root / self.code / "annotations"
        return self.resolve(self.annotations)


def search_paths(path: Path) -> list[Path]:
    """Where a relative path of the countries file is looked for: the working directory, then the
    project root (each place once: the two are the same when run from the checkout)."""
    if path.is_absolute():
        return [path]
    out: list[Path] = []
    for cand in (Path.cwd() / path, PROJECT_ROOT / path):
        if all(os.path.abspath(cand) != os.path.abspath(seen) for seen in out):
            out.append(cand)
    return out


@dataclass(frozen=True)
class CountryRegistry:
    countries: dict[str, CountryConfig]
    default: str
    path: str
    #: The file's key lines (for ``FILE:LINE: problem`` after loading); None: not from a file.
    lines: KeyLines | None = None

    def get(self, code: str) -> CountryConfig:
        try:
            return self.countries[code]
        except KeyError:
            raise UnknownPartitionError(
                f"unknown country {code!r} (configured in {self.path}: "
                f"{', '.join(sorted(self.countries))})"
            ) from None

    @property
    def all_years(self) -> list[int]:
        return sorted({y for c in self.countries.values() for y in c.years})

    @property
    def codes(self) -> list[str]:
        return sorted(self.countries)


def source_root(country: CountryConfig) -> Path:
    """The country's tile-folder root: $<source.root_env> if set, else ``source.root``, tried
    against the working directory, then the project root (``../shared/...`` works from any
    working directory); a root not found is an error naming every place tried."""
    env = getattr(country.source, "root_env", None)
    if env and os.environ.get(env):
        cand = Path(os.environ[env]).expanduser()
        if cand.is_dir():
            return cand
        raise CountryConfigError(f"country {country.code}: ${env}={cand} is not a folder")
    raw = getattr(country.source, "root", None)
    if not raw:
        raise CountryConfigError(f"country {country.code}: tile_folder source needs 'root'")
    root = Path(raw).expanduser()
    candidates = search_paths(root)
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    hint = f" or set ${env}" if env else ""
    raise CountryConfigError(
        f"country {country.code}: imagery folder not found (tried "
        f"{', '.join(map(str, candidates))}); edit source.root in the countries file{hint}"
    )


def parse_countries(
    data: dict[str, Any], path: str, lines: KeyLines | None = None, today: date | None = None
) -> CountryRegistry:
    """The registry from a parsed countries file (open-ended years end at ``today``); ``lines``
    (from :meth:`KeyLines.of_yaml`) lets every error name the file's line."""
    lines = lines or KeyLines(path)
    if not isinstance(data, dict) or not isinstance(data.get("countries"), dict):
        data = {}
    if not data.get("countries"):
        raise lines.error(("countries",), "expected a mapping with a non-empty 'countries' section")
    countries: dict[str, CountryConfig] = {}
    for code, entry in data["countries"].items():
        keys = ("countries", code)
        if not isinstance(entry, dict):
            raise lines.error(keys, f"country {code}: expected a mapping")

        def written(loc: tuple, keys: tuple = keys) -> tuple:
            """A setting's old name (``scorer_steps``) where the file has it, not the new one; a
            rule across model settings at the other key it names when the recipe set this one."""
            olds = [("models", old) for old, new in RENAMED.items() if loc == ("models", new)]
            if len(loc) == 2 and loc[0] == "models":
                olds += [("models", k) for k in ALSO_NAMED.get(loc[1], ())]
            return next((k for k in (loc, *olds) if (*keys, *k) in lines.lines), loc)

        try:
            countries[code] = CountryConfig.model_validate(
                {**entry, "code": code}, context={"today": today}
            )
        except ValidationError as exc:
            at, problem = explain(exc, written)
            raise lines.error((*keys, *at), f"country {code}: {problem}") from None
    default = data.get("default", next(iter(countries)))
    if default not in countries:
        raise lines.error(("default",), f"default country {default!r} is not configured")
    return CountryRegistry(countries=countries, default=default, path=path, lines=lines)


def load_countries(
    path: str | os.PathLike[str] | None = None, today: date | None = None
) -> CountryRegistry:
    """Load the countries file: ``path``, else $SISCORE_COUNTRIES, else the packaged default;
    open-ended years end at ``today``'s year (default: the clock)."""
    chosen = path or os.environ.get(ENV_COUNTRIES)
    if chosen:
        p = Path(chosen)
        if not p.is_file():
            raise CountryConfigError(f"countries file not found: {p}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    else:
        ref = resources.files("siscore_assets.config").joinpath(PACKAGED_COUNTRIES)
        text, where = ref.read_text(encoding="utf-8"), "siscore_assets/config/countries.yaml"
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
        lines = KeyLines.of_yaml(text, where)
    except DuplicateKeyError as exc:
        raise CountriesFileError(where, exc.line, exc.problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise CountriesFileError(
            where, mark.line + 1 if mark else None, f"not valid YAML: {problem}"
        ) from None
    return parse_countries(data, where, lines, today)
