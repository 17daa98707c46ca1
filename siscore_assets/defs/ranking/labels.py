"""The labelling kit and the merged habitation labels of a country.

`label_kit` writes ``<data root>/<CODE>/label_kit.html``: a seeded sample of the country's usable
tiles, spread over appearance and years, for people to label urban / rural / uninhabited.  They
export ``<name>.labels.csv`` into ``<data root>/<CODE>/labels/``; `habitation_labels` merges every
export there into soft labels (vote fractions), table `habitation_labels` and the file
``<data root>/<CODE>/habitation_labels.csv`` (``tile_id,year,urban,rural,uninhabited,
n_annotators``), with the annotators' agreement (Fleiss' kappa, pairwise Cohen's kappa).
"""

import json

import numpy as np
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from siscore_assets.core.countries import CountryConfig
from siscore_assets.core.ranking import label_kit as labels
from siscore_assets.core.ranking.annotation_kit import files_fingerprint
from siscore_assets.core.storage.files import atomic_path

from ..common.context import OWNERS, country_only, imagery_not_configured, imagery_skipped
from ..common.data import (
    LABEL_EXPORTS_FOLDER,
    LABEL_KIT_FILE,
    MERGED_LABELS_FILE,
    label_exports_folder,
    merged_labels_path,
    year_tiles,
)
from ..common.metadata import frame_md
from ..common.partitions import Partitions, keep_unloaded, reload_note, split_loaded
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "ranking"
KIT_TILES = 240  # tile-years a kit shows: a few hours of one person's work
LABEL_JOB = "habitation_labels_refresh"
LABEL_SENSOR = "label_files_changed"


def render_country_kit(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, n: int, seed: int
) -> labels.LabelKit:
    """The kit for a country's usable tiles of the years ingested so far (only the sampled rows
    are read from the stores): the walkthrough ingests one year first and labels it."""
    years = {
        year: (index["tile_id"].tolist(), store)
        for year, (index, store) in ingested_years(
            settings, warehouse, country, "tile_id, image_row, stack_path"
        ).items()
    }
    picks = labels.sample_tiles(years, n, seed=seed)
    tiles = [
        labels.KitTile(p.tile_id, p.year, np.asarray(years[p.year][1][p.row]), p.stratum)
        for p in picks
    ]
    return labels.render_label_kit(
        tiles,
        title=f"{country.name}: label the tiles",
        country=country.code,
        note=f"(Coordinator: drop it into {label_exports_folder(settings, country.code)}.)",
    )


def known_tile_years(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig
) -> set[tuple[str, int]]:
    """Every usable tile-year of the years ingested so far (indexes only): what a label may
    name."""
    return {
        (t, year)
        for year, (index, _) in ingested_years(settings, warehouse, country, "tile_id").items()
        for t in index["tile_id"]
    }


def ingested_years(
    settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig, columns: str
) -> dict[int, tuple]:
    """{year: (usable `patches` rows, tile store)} of the configured years ingested so far; none
    ingested is the first year's clear error (materialise 'patches')."""
    out, missing = {}, None
    for year in country.years:
        try:
            out[int(year)] = year_tiles(settings, warehouse, country.code, year, columns=columns)
        except FileNotFoundError as exc:
            missing = missing or exc
    if not out and missing is not None:
        raise missing
    return out


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[p.from_years("patches")],
        kinds={"html"},
        description="The labelling kit: one self-contained HTML page (opens from file://) showing "
        f"a seeded sample of {KIT_TILES} usable tile-years, spread over appearance and years; "
        "people label each urban / rural / uninhabited (keys 1 2 3, S skip, Z undo) and export "
        f"`<name>.labels.csv` into the country's `{LABEL_EXPORTS_FOLDER}/` folder.",
    )
    def label_kit(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):
            return done
        kit = render_country_kit(settings, warehouse, country, KIT_TILES, country.models.seed)
        path = settings.country_dir(country.code) / LABEL_KIT_FILE
        with atomic_path(path) as tmp:
            tmp.write_text(kit.html, encoding="utf-8")
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(path.resolve())),
                "tiles": len(kit.tiles),
                "years": len({y for _, y in kit.tiles}),
                "size_kb": round(kit.size_bytes / 1024, 1),
                "exports_folder": MetadataValue.path(
                    str(label_exports_folder(settings, country.code))
                ),
            }
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[p.from_years("patches")],
        kinds={"duckdb", "csv"},
        description="Soft habitation labels: every `<name>.labels.csv` in the country's "
        f"`{LABEL_EXPORTS_FOLDER}/` folder merged into vote fractions per tile-year (urban, "
        f"rural, uninhabited, n_annotators), table `habitation_labels` and `{MERGED_LABELS_FILE}`; "
        "agreement as Fleiss' kappa and pairwise Cohen's kappa. A bad export fails with "
        "FILE:LINE and nothing is written; no export leaves the partition empty.",
    )
    def habitation_labels(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys, out = {"country": country.code}, merged_labels_path(settings, country.code)
        if done := imagery_not_configured(warehouse, country, {"habitation_labels": keys}):
            return done[0]
        files = labels.export_files(label_exports_folder(settings, country.code))
        if not files:
            warehouse.clear("habitation_labels", keys)
            out.unlink(missing_ok=True)  # derived from exports that are gone
            folder = label_exports_folder(settings, country.code)
            return MaterializeResult(
                metadata={"status": f"no label exports in {folder}", "rows": 0}
            )
        known = known_tile_years(settings, warehouse, country)
        merged, agree, per_annotator = labels.merge_exports(files, known)  # raises before writing
        with atomic_path(out) as tmp:
            merged.to_csv(tmp, index=False)
        n = warehouse.write("habitation_labels", merged.assign(country=country.code), keys)
        return MaterializeResult(
            metadata={
                "status": "ok",
                "rows": n,
                "path": MetadataValue.path(str(out.resolve())),
                "annotators": len(per_annotator),
                "fleiss_kappa": agree.fleiss_kappa
                if np.isfinite(agree.fleiss_kappa)
                else "n/a: no tile-year labelled by two annotators",
                "shared_tile_years": agree.shared_items,
                "pairwise": frame_md(agree.pairwise),
            }
        )

    return [label_kit, habitation_labels]


def build_label_sensor(p: Partitions) -> SensorDefinition:
    """The sensor (and its job) that re-merges a country's labels when its exports change; a
    country the loaded definitions lack (added to the countries file after the code location
    loaded) is left for after a reload, and the tick says so."""
    loaded = set(p.country.get_partition_keys())
    job = define_asset_job(
        LABEL_JOB,
        selection=AssetSelection.assets("habitation_labels"),
        description="Merge one country's label exports into `habitation_labels`. Started by the "
        f"{LABEL_SENSOR} sensor.",
    )

    @sensor(
        name=LABEL_SENSOR,
        job=job,
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Watches each country's `{LABEL_EXPORTS_FOLDER}/` folder (*.labels.csv); a "
        "new, edited or removed export runs `habitation_labels` for that country. The first tick "
        "records a baseline. A bad export makes the run fail with FILE:LINE; the earlier merge "
        "stays.",
    )
    def label_files_changed(context: SensorEvaluationContext, settings: SiscoreSettings):
        registry = settings.registry()
        current = {}
        for code in registry.codes:
            files = labels.export_files(label_exports_folder(settings, code))
            current[code] = files_fingerprint(files) if files else None
        before = json.loads(context.cursor) if context.cursor else {}
        changed = [c for c, fp in sorted(current.items()) if before.get(c) != fp]
        changed, unloaded = split_loaded(changed, loaded)
        cursor = json.dumps(keep_unloaded(current, before, unloaded), sort_keys=True)
        if not context.cursor:
            return SensorResult(skip_reason=SkipReason("baseline recorded"), cursor=cursor)
        runs = [
            RunRequest(partition_key=code, tags={"siscore/labels": str(current[code])})
            for code in changed
        ]
        note = reload_note("label exports", unloaded, "not merged")
        if not runs:
            return SensorResult(
                skip_reason=SkipReason(note or "no label export changed"), cursor=cursor
            )
        if note:
            context.log.warning(note)
        return SensorResult(run_requests=runs, cursor=cursor)

    return label_files_changed
