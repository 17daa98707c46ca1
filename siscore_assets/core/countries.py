"""Countries as configuration: one YAML file lists every country the platform knows.

Adding a country (or a year) is an edit to the YAML, never to code; the Dagster partitions are
built from this file at load time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for relative source roots
PACKAGED_COUNTRIES = "countries.yaml"
ENV_COUNTRIES = "SISCORE_COUNTRIES"

SOURCE_KINDS = ("synthetic", "tile_folder")
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
    normalize: str = "fixed"  # "fixed" constants or "per_image" (standardise each tile: years comparable)
    scorer_lr: float = 1e-3
    sampling: str = "tier"  # "cluster": every step draws per_tier images from each cluster of each tier
    scorer_seeds: tuple[int, ...] = ()  # several seeds -> one model per seed, siScore = their mean
    holdout_per_cluster: int = 0  # images per cluster kept out of training, for checkpoint selection
    eval_every: int = 0  # steps between held-out evaluations (0: only the final model)
    habitation_holdout: float = 0.0  # share of pretraining images kept out to report accuracy
    folder_urban_clusters: int = 0  # clusters-from-folder: ids below this are urban, the rest rural
    # Stage 1 with `clusters: deepcluster`: alternating k-means / CNN rounds, epochs per round.
    deepcluster_rounds: int = 3
    deepcluster_epochs: int = 1
    gradcam_tiles: int = 4  # tiles (largest first-to-last-year change) in the Grad-CAM panel


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


@dataclass(frozen=True)
class CountryConfig:
    code: str
    name: str
    years: tuple[int, ...]
    source: dict[str, Any]
    zoom: int = 14
    bbox: tuple[float, float, float, float] | None = None
    annotations: str = GENERATED
    districts: str = GENERATED
    proxies: str | dict[str, str] = GENERATED
    covariates: str = GENERATED
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
            return source_root(self) / value[len("{root}"):].lstrip("/")
        return Path(value)

    def layer_file(self, layer: str) -> Path:
        """A ground layer configured as a file (GeoPackage / shapefile / GeoJSON), checked to exist."""
        path = Path(str(getattr(self, layer)))
        if not path.is_file():
            raise CountryConfigError(f"country {self.code}: {layer} layer file not found: {path}")
        return path

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


def _settings(cls: type, raw: dict[str, Any] | None, where: str) -> Any:
    raw = dict(raw or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CountryConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    for key, value in list(raw.items()):
        if isinstance(value, list):
            raw[key] = tuple(value)
    return cls(**raw)


def configured_years(raw: Any, where: str, today: date | None = None) -> tuple[int, ...]:
    """A list of years, or open-ended ``{from: 2016}`` (optionally ``to:``): every year from
    ``from`` up to the current year (``today``, default the clock), evaluated at load."""
    if isinstance(raw, dict):
        unknown = sorted(set(raw) - {"from", "to"})
        first, last = raw.get("from"), raw.get("to", (today or date.today()).year)
        if unknown or not isinstance(first, int) or not isinstance(last, int) or last < first:
            raise CountryConfigError(f"{where}: 'years' as a mapping is {{from: YEAR}} or "
                                     "{from: YEAR, to: YEAR} with from <= to (and the current year)")
        return tuple(range(first, last + 1))
    if not raw or not isinstance(raw, list) or not all(isinstance(y, int) for y in raw):
        raise CountryConfigError(f"{where}: 'years' must be a non-empty list of integers or {{from: YEAR}}")
    return tuple(sorted(raw))


def parse_countries(data: dict[str, Any], path: str, today: date | None = None) -> CountryRegistry:
    if not isinstance(data, dict) or not isinstance(data.get("countries"), dict) or not data["countries"]:
        raise CountryConfigError(f"{path}: expected a mapping with a non-empty 'countries' section")
    countries: dict[str, CountryConfig] = {}
    for code, entry in data["countries"].items():
        where = f"{path}: country {code}"
        if not isinstance(code, str) or not code.isalnum() or not code.isupper():
            raise CountryConfigError(f"{where}: country codes are upper-case letters/digits (e.g. PRK)")
        if not isinstance(entry, dict):
            raise CountryConfigError(f"{where}: expected a mapping")
        years = configured_years(entry.get("years"), where, today)
        source = entry.get("source")
        if not isinstance(source, dict) or source.get("kind") not in SOURCE_KINDS:
            raise CountryConfigError(f"{where}: source.kind must be one of {', '.join(SOURCE_KINDS)}")
        bbox = entry.get("bbox")
        countries[code] = CountryConfig(
            code=code,
            name=str(entry.get("name", code)),
            years=years,
            source=dict(source),
            zoom=int(entry.get("zoom", 14)),
            bbox=tuple(bbox) if bbox else None,
            annotations=str(entry.get("annotations", GENERATED)),
            districts=str(entry.get("districts", GENERATED)),
            proxies=entry.get("proxies", GENERATED),
            covariates=str(entry.get("covariates", GENERATED)),
            clusters=str(entry.get("clusters", CLUSTERS_KMEANS)),
            pretrain=str(entry.get("pretrain", GENERATED)),
            models=_settings(ModelSettings, entry.get("models"), f"{where}: models"),
            regression=_settings(RegressionSettings, entry.get("regression"), f"{where}: regression"),
        )
    default = data.get("default", next(iter(countries)))
    if default not in countries:
        raise CountryConfigError(f"{path}: default country {default!r} is not configured")
    return CountryRegistry(countries=countries, default=default, path=path)


def load_countries(path: str | os.PathLike[str] | None = None, today: date | None = None) -> CountryRegistry:
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
    except yaml.YAMLError as exc:
        raise CountryConfigError(f"{where}: not valid YAML: {exc}") from exc
    return parse_countries(data, where, today)
