"""The imagery sensor: new or changed imagery of a configured country-year (a tile-folder
country's ``<tiles>/<year>/`` folder) starts that partition's yearly refresh; the years of one
country changed at one tick are one group, followed up once (``followup.py``).  A year the
loaded definitions lack (the countries file changed after the code location loaded) is not
requested: the tick says to reload it, and the year stays new until then."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from siscore_assets.core.countries import CountryConfigError, CountryRegistry
from siscore_assets.core.imagery.tile_folder import tiles_dir

from ..common.partitions import (
    SEPARATOR,
    Partitions,
    country_year_key,
    keep_unloaded,
    reload_note,
    split_loaded,
)
from ..common.resources import SiscoreSettings
from .followup import TRIGGER_TAG, group_tags

SENSOR_NAME = "imagery_files_changed"


def folder_fingerprint(folder: Path) -> str | None:
    """A hash of the file names, sizes and modification times under ``folder`` (None if absent
    or empty): cheap enough to take every minute, and it changes when a file is added or
    replaced."""
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    n = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest.update(
                f"{path.relative_to(folder).as_posix()}:{st.st_size}:{st.st_mtime_ns}\n".encode()
            )
            n += 1
    return digest.hexdigest() if n else None


def imagery_fingerprints(registry: CountryRegistry) -> dict[str, str | None]:
    """Every configured country-year of a tile-folder country: its year folder's fingerprint."""
    out: dict[str, str | None] = {}
    for code in registry.codes:
        country = registry.get(code)
        if country.source_kind != "tile_folder":
            continue  # synthetic imagery is rendered, never delivered
        try:
            root = tiles_dir(country)
        except CountryConfigError:
            root = None
        for year in country.years:
            out[country_year_key(code, year)] = (
                folder_fingerprint(root / str(year)) if root else None
            )
    return out


def build_imagery_sensor(
    yearly_job: UnresolvedAssetJobDefinition, p: Partitions
) -> SensorDefinition:
    """The imagery sensor of ``yearly_job``; years ``p`` lacks wait for a reload."""
    known = set(p.country_year.get_partition_keys())

    @sensor(
        name=SENSOR_NAME,
        job=yearly_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches each tile-folder country's <tiles>/<year>/ folder of every configured "
        "year: when its files appear or change, runs the yearly refresh of that country-year. "
        "The first tick records what is there. A year the loaded code location does not have "
        "yet is left for after a reload.",
    )
    def imagery_files_changed(context: SensorEvaluationContext, settings: SiscoreSettings):
        current = imagery_fingerprints(settings.registry())
        if context.cursor is None:
            return SensorResult(
                skip_reason=SkipReason(f"baseline recorded for {len(current)} country-year(s)"),
                cursor=json.dumps(current, sort_keys=True),
            )
        before = json.loads(context.cursor)
        changed = [k for k, fp in current.items() if fp is not None and fp != before.get(k)]
        changed, dropped = split_loaded(changed, known)
        cursor = json.dumps(keep_unloaded(current, before, dropped), sort_keys=True)
        note = reload_note("imagery", dropped, "not requested")
        if not changed:
            return SensorResult(skip_reason=SkipReason(note or "no imagery changed"), cursor=cursor)
        if note:
            context.log.warning(note)
        requests = []
        for code in sorted({k.partition(SEPARATOR)[0] for k in changed}):
            keys = [k for k in changed if k.partition(SEPARATOR)[0] == code]
            digest = hashlib.sha256("".join(current[k] for k in keys).encode()).hexdigest()
            group = group_tags(f"{code}:imagery:{digest[:12]}", len(keys))
            requests += [
                RunRequest(
                    run_key=f"{k}:{current[k][:12]}",
                    partition_key=k,
                    tags={TRIGGER_TAG: "imagery_files", **group},
                )
                for k in keys
            ]
        return SensorResult(run_requests=requests, cursor=cursor)

    return imagery_files_changed
