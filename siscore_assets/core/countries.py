"""Countries as configuration: one YAML file lists every country the platform knows.

Adding a country (or a year) is an edit to the YAML, never to code; the Dagster partitions are
built from this file at load time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# The stac block's parser, re-exported: rooms may import the countries file, not its parts.
from siscore_assets.core.countries_stac import StacBlockError as StacBlockError
from siscore_assets.core.countries_stac import StacSource as StacSource
from siscore_assets.core.countries_stac import parse_stac_block as parse_stac_block
from siscore_assets.core.storage.paths import is_safe_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for relative source roots
PACKAGED_COUNTRIES = "countries.yaml"
ENV_COUNTRIES = "SISCORE_COUNTRIES"

SOURCE_KINDS = ("synthetic", "tile_folder", "stac")  # stac: see parse_stac_block
GENERATED = "generated"
# Stage-1 cluster sources: the encoder + k-means (default), DeepCluster, or a folder
# ``<path>/<cluster id>/*.png`` of ready-made clusters (any other value is that path).
CLUSTERS_KMEANS = "kmeans"
CLUSTERS_DEEPCLUSTER = "deepcluster"
# A ground layer (districts, proxies, covariates) set to "none": the country has no such layer;
# the assets that need it record that and skip instead of failing.
NONE = "none"


class CountryConfigError(ValueError):
    """A countries file that cannot be used; the message names the file and the entry."""


class CountriesFileError(CountryConfigError):
    """A countries-file entry that cannot be used, located for the person who edits the file:
    the message is one line, ``FILE:LINE: problem`` (``FILE: problem`` when no line is known)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}" if line else f"{path}: {problem}")


@dataclass(frozen=True)
class KeyLines:
    """The 1-based line of every mapping key and list item of a YAML document, by its path of
    keys (``("countries", "PRK", "years")``, list items by index), from PyYAML's node marks.

    ``error(keys, problem)`` locates a problem at the deepest of ``keys`` the file has, so a
    missing key points at its parent; other parsers of the countries file (sources, settings)
    raise through it."""

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
        while at:
            if at in self.lines:
                return self.lines[at]
            at = at[:-1]
        return None

    def error(self, keys: Sequence[Any], problem: str) -> CountriesFileError:
        return CountriesFileError(self.path, self.line(keys), problem)


class UnknownPartitionError(ValueError):
    """A country or year that the configuration does not define."""


@dataclass(frozen=True)
class ModelSettings:
    seed: int = 0
    habitation_input_px: int = 32
    habitation_epochs: int = 12
    k_range_urban: tuple[int, int] = (3, 8)
    k_range_rural: tuple[int, int] = (3, 8)
    input_px: int = 32  # the scorer's input size
    scorer_steps: int = 150
    per_tier: int = 6
    alpha_linearity: float = 5.0
    grayscale: bool = False
    # Stage 2 data-guided POGs: proxies (columns of the `proxies` table, or names of the
    # country's proxy rasters) averaged per cluster and ranked, ties within guided_tolerance
    # (a fraction of the range of the cluster means); guided_annotator names one of them to
    # join the human annotators in the ensemble ("" = none).  The defaults feed the NL- and
    # LC-guided baselines (nightlight, built_up_share); a default the country lacks is skipped.
    guided_proxies: tuple[str, ...] = ("nightlight", "building_floor_area_m2", "built_up_share")
    guided_tolerance: float = 0.02
    guided_annotator: str = ""
    # The ensemble: tier count (0 = chosen by agreement with the annotators) and how many of the
    # most disputed clusters to leave out of the ensembled POG (0 = none).
    ensemble_tiers: int = 0
    ensemble_prune: int = 0
    # Real-imagery options (defaults keep the synthetic country's behaviour).
    normalize: str = (
        "fixed"  # "fixed" constants or "per_image" (standardise each tile: years comparable)
    )
    scorer_lr: float = 1e-3
    sampling: str = (
        "tier"  # "cluster": every step draws per_tier images from each cluster of each tier
    )
    scorer_seeds: tuple[int, ...] = ()  # several seeds -> one model per seed, siScore = their mean
    holdout_per_cluster: int = (
        0  # images per cluster kept out of training, for checkpoint selection
    )
    eval_every: int = 0  # steps between held-out evaluations (0: only the final model)
    habitation_holdout: float = 0.0  # share of pretraining images kept out to report accuracy
    folder_urban_clusters: int = 0  # clusters-from-folder: ids below this are urban, the rest rural
    # Stage 1 with `clusters: deepcluster`: alternating k-means / CNN rounds, epochs per round.
    deepcluster_rounds: int = 3
    # K-means / DeepCluster fit on a seeded sample of at most this many inhabited tile-years (K by
    # silhouette on it); every other tile-year is assigned to its nearest centroid in batches.
    cluster_sample: int = 20_000
    deepcluster_epochs: int = 1
    gradcam_tiles: int = 4  # tiles (largest first-to-last-year change) in the Grad-CAM panel
    # Real imagery: a training recipe of core/models/recipes.py ("cpu", "paper"): ResNet-18
    # pretraining + rank training from it; "" keeps the small-CNN path above.
    recipe: str = ""


@dataclass(frozen=True)
class RegressionSettings:
    first_year: int | None = None
    last_year: int | None = None
    regressors: tuple[str, ...] = (
        "dist_capital_km",
        "dist_provincial_km",
        "dist_county_km",
        "edz_industrial",
        "edz_tourism",
        "edz_agricultural",
        "near_mine",
        "near_nuclear",
    )
    # The standard errors' cluster: a column of the regression panel (district_id, province, or
    # tile_block = 4 x 4 tiles, for a country sampled in fewer districts than clusters need).
    cluster: str = "district_id"


@dataclass(frozen=True)
class CountryConfig:
    code: str
    name: str
    years: tuple[int, ...]
    source: dict[str, Any]
    zoom: int = 14
    bbox: tuple[float, float, float, float] | None = None
    annotations: str = GENERATED
    districts: str | dict[str, str] = GENERATED  # a file, or {file: ..., <role>: column}
    proxies: str | dict[str, str] = GENERATED  # {name: raster file}
    covariates: str | dict[str, Any] = (
        GENERATED  # a file with `kind`, or {kind: file | {file, type}}
    )
    clusters: str = CLUSTERS_KMEANS
    pretrain: str = GENERATED
    models: ModelSettings = field(default_factory=ModelSettings)
    regression: RegressionSettings = field(default_factory=RegressionSettings)

    @property
    def source_kind(self) -> str:
        return str(self.source["kind"])

    @property
    def is_synthetic(self) -> bool:
        return self.source_kind == "synthetic"

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
        """A ground layer's file (GeoPackage / shapefile / GeoJSON / GeoTIFF), checked to exist:
        ``value`` (one file of a mapping), else the layer's own file.  ``{root}/...`` is inside
        the tile-folder root; a relative path is tried against the working directory, then the
        project root (as ``source.root``)."""
        if value is None:
            spec = getattr(self, layer)
            value = str(spec["file"]) if isinstance(spec, dict) else str(spec)
        path = self.resolve(value) if value.startswith("{root}") else Path(value).expanduser()
        candidates = [path] if path.is_absolute() else [Path.cwd() / path, PROJECT_ROOT / path]
        for cand in candidates:
            if cand.is_file():
                return cand
        raise CountryConfigError(
            f"country {self.code}: {layer} layer file not found: {path} "
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


@dataclass(frozen=True)
class CountryRegistry:
    countries: dict[str, CountryConfig]
    default: str
    path: str

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
    """The country's tile-folder root: $<source.root_env> if set, else ``source.root``.

    A relative ``source.root`` is tried against the working directory, then the project root
    (so ``../shared/data/nk_sample`` works from a checkout wherever the command runs).  A root
    that does not exist is a clear error naming every place tried and how to point elsewhere.
    """
    src = country.source
    env = src.get("root_env")
    tried: list[str] = []
    if env and os.environ.get(str(env)):
        cand = Path(os.environ[str(env)]).expanduser()
        if cand.is_dir():
            return cand
        raise CountryConfigError(f"country {country.code}: ${env}={cand} is not a folder")
    raw = src.get("root")
    if not raw:
        raise CountryConfigError(f"country {country.code}: tile_folder source needs 'root'")
    root = Path(str(raw)).expanduser()
    candidates = [root] if root.is_absolute() else [Path.cwd() / root, PROJECT_ROOT / root]
    for cand in candidates:
        tried.append(str(cand))
        if cand.is_dir():
            return cand.resolve()
    hint = f" or set ${env}" if env else ""
    raise CountryConfigError(
        f"country {country.code}: imagery folder not found (tried {', '.join(tried)}); "
        f"edit source.root in the countries file{hint}"
    )


def _settings(
    cls: type, raw: dict[str, Any] | None, where: str, lines: KeyLines, keys: tuple
) -> Any:
    if raw is not None and not isinstance(raw, dict):
        raise lines.error(keys, f"{where}: expected a mapping of settings")
    raw = dict(raw or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - known, key=str)
    if unknown:
        raise lines.error(
            (*keys, unknown[0]), f"{where}: unknown setting(s) {', '.join(map(str, unknown))}"
        )
    defaults = cls()
    for key, value in list(raw.items()):
        if isinstance(value, list):
            raw[key] = value = tuple(value)
        default = getattr(defaults, key)
        kind = type(default)
        if default is None or (
            kind is float and isinstance(value, int) and not isinstance(value, bool)
        ):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise lines.error(
                (*keys, key),
                f"{where}: {key} must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}",
            )
    return cls(**raw)


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    tuple: "a list",
}


def _zoom(value: Any, where: str, lines: KeyLines, keys: tuple) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 22:
        raise lines.error(keys, f"{where}: zoom must be an integer 0-22, got {value!r}")
    return value


def _layer(
    entry: dict[str, Any], layer: str, synthetic: bool, where: str, lines: KeyLines, keys: tuple
) -> Any:
    """A ground layer's value: left out, a synthetic country generates it and any other is 'none'.

    districts: a file or ``{file: ..., <role>: column}``; proxies: ``{name: raster file}``;
    covariates: a file with a ``kind`` column or ``{kind: file | {file: ..., type: column}}``."""
    value = entry.get(layer, GENERATED if synthetic else NONE)
    at = (*keys, layer)
    forms = {
        "districts": "a file or a mapping {file: ..., id/province/name/population/population_density: column}",
        "proxies": "a mapping {name: raster file}",
        "covariates": "a file or a mapping {kind: file or {file: ..., type: column}}",
    }[layer]
    if isinstance(value, str) and value:
        if layer == "proxies" and value not in (GENERATED, NONE):
            raise lines.error(
                at,
                f"{where}: proxies must be {forms}, '{GENERATED}' or '{NONE}', got a single path",
            )
        return value
    if not isinstance(value, dict) or not value:
        raise lines.error(at, f"{where}: {layer} must be {forms}, '{GENERATED}' or '{NONE}'")
    if layer == "districts" and not isinstance(value.get("file"), str):
        raise lines.error(at, f"{where}: districts needs 'file' (a polygon layer)")
    for key, item in value.items():
        ok = isinstance(item, str) and bool(item)
        if layer == "covariates" and isinstance(item, dict):
            ok = isinstance(item.get("file"), str) and set(item) <= {"file", "type"}
        if not ok:
            raise lines.error(
                (*at, key),
                f"{where}: {layer}.{key} must be "
                + (
                    "a file or {file: ..., type: column}"
                    if layer == "covariates"
                    else "a file path"
                    if layer == "proxies"
                    else "a column name"
                    if key != "file"
                    else "a file path"
                ),
            )
    return dict(value)


def configured_years(
    raw: Any, where: str, today: date | None = None, lines: KeyLines | None = None, keys: tuple = ()
) -> tuple[int, ...]:
    """A list of years, or open-ended ``{from: 2016}`` (optionally ``to:``): every year from
    ``from`` up to the current year (``today``, default the clock), evaluated at load."""
    lines = lines or KeyLines("countries file")
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"from", "to"})
        first, last = raw.get("from"), raw.get("to", (today or date.today()).year)
        if unknown or not isinstance(first, int) or not isinstance(last, int) or last < first:
            raise lines.error(
                keys,
                f"{where}: 'years' as a mapping is {{from: YEAR}} or "
                "{from: YEAR, to: YEAR} with from <= to (and the current year)",
            )
        return tuple(range(first, last + 1))
    if not raw or not isinstance(raw, list) or not all(isinstance(y, int) for y in raw):
        raise lines.error(
            keys, f"{where}: 'years' must be a non-empty list of integers or {{from: YEAR}}"
        )
    return tuple(sorted(raw))


def parse_countries(
    data: dict[str, Any], path: str, lines: KeyLines | None = None, today: date | None = None
) -> CountryRegistry:
    """The registry from a parsed countries file (open-ended years end at ``today``); ``lines`` (from :meth:`KeyLines.of_yaml`) lets
    every error name the file's line."""
    lines = lines or KeyLines(path)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("countries"), dict)
        or not data["countries"]
    ):
        raise lines.error(("countries",), "expected a mapping with a non-empty 'countries' section")
    countries: dict[str, CountryConfig] = {}
    for code, entry in data["countries"].items():
        where, keys = f"country {code}", ("countries", code)
        if (
            not isinstance(code, str)
            or not code.isalnum()
            or not code.isupper()
            or not is_safe_name(code)
        ):
            raise lines.error(
                keys, f"{where}: country codes are upper-case letters/digits (e.g. PRK)"
            )
        if not isinstance(entry, dict):
            raise lines.error(keys, f"{where}: expected a mapping")
        for required_key in ("years", "source"):
            if required_key not in entry:
                raise lines.error(keys, f"{where}: missing required key '{required_key}'")
        years = configured_years(entry.get("years"), where, today, lines, (*keys, "years"))
        source = entry.get("source")
        if not isinstance(source, dict) or source.get("kind") not in SOURCE_KINDS:
            raise lines.error(
                (*keys, "source", "kind"),
                f"{where}: source.kind must be one of {', '.join(SOURCE_KINDS)}",
            )
        bbox = entry.get("bbox")
        if source["kind"] == "stac":
            try:
                parse_stac_block(source, bbox)
            except StacBlockError as exc:
                raise lines.error((*keys, *exc.keys), f"{where}: {exc.problem}") from None
        synthetic = source.get("kind") == "synthetic"
        countries[code] = CountryConfig(
            code=code,
            name=str(entry.get("name", code)),
            years=years,
            source=dict(source),
            zoom=_zoom(entry.get("zoom", 14), where, lines, (*keys, "zoom")),
            bbox=tuple(bbox) if bbox else None,
            annotations=str(entry.get("annotations", GENERATED)),
            districts=_layer(entry, "districts", synthetic, where, lines, keys),
            proxies=_layer(entry, "proxies", synthetic, where, lines, keys),
            covariates=_layer(entry, "covariates", synthetic, where, lines, keys),
            clusters=str(entry.get("clusters", CLUSTERS_KMEANS)),
            pretrain=str(entry.get("pretrain", GENERATED)),
            models=_settings(
                ModelSettings, entry.get("models"), f"{where}: models", lines, (*keys, "models")
            ),
            regression=_settings(
                RegressionSettings,
                entry.get("regression"),
                f"{where}: regression",
                lines,
                (*keys, "regression"),
            ),
        )
    default = data.get("default", next(iter(countries)))
    if default not in countries:
        raise lines.error(("default",), f"default country {default!r} is not configured")
    return CountryRegistry(countries=countries, default=default, path=path)


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
        data = yaml.safe_load(text)
        lines = KeyLines.of_yaml(text, where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise CountriesFileError(
            where, mark.line + 1 if mark else None, f"not valid YAML: {problem}"
        ) from None
    return parse_countries(data, where, lines, today)
