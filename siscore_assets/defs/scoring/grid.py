"""What `siscore_grid` does for one country-year, beside its asset body: the year's common
radiometry fitted from stored band means, the scores (from stored scorer parts for the ``cpu``
recipe), and the rows joined on 64-bit tile keys and written through the warehouse spool.

What stays year-wide in the process is per-tile numbers only: the year's scores, the tiles'
64-bit keys, image rows and habitation flags (~30 bytes a tile), and, with ``radiometry:
relative``, each year's band means (24 bytes a tile-year) and the row pairs of the tiles two
years share.  The joins run on the keys in numpy; tile ids reach Python one spooled batch of
:data:`GRID_BATCH_ROWS` rows at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import band_means, radiometry
from siscore_assets.core.imagery.patches import STATUS_OK
from siscore_assets.core.models import batch_inference, scorer_parts
from siscore_assets.core.storage import warehouse as warehouse_lib

from ..common.data import year_tiles
from ..common.resources import SiscoreSettings, Warehouse

#: A tile's 64-bit key, z, x and y packed (zoom <= 29): the year-wide joins hold 8 bytes a tile in
#: numpy.  DuckDB hash joins and sorts on tile-id strings held ~300 bytes a tile and grew the
#: stage's peak with the country (+19 % from 10,000 to 400,000 tiles, issue 26).
TILE_KEY = "((z::BIGINT << 58) | (x::BIGINT << 29) | y::BIGINT)"
MAX_KEY_ZOOM = 29
USABLE = "country = $code AND year = $year AND status = $ok"
#: The usable patches of a country-year, unsorted (sorted by image row in numpy).
STORE_ORDER_SQL = f"SELECT image_row, {TILE_KEY} AS k, z FROM patches WHERE {USABLE}"
#: A year's habitation verdicts by tile key (NULL verdicts kept apart).
VERDICTS_SQL = f"""
SELECT {TILE_KEY} AS k, coalesce(inhabited, FALSE) AS inhabited, inhabited IS NULL AS unknown
FROM habitation WHERE country = $code AND year = $year
"""
#: One spooled batch of `siscore_grid` rows: the patches' own tile ids and z / x / y, by image row.
BATCH_SQL = f"""
SELECT tile_id, z, x, y, {TILE_KEY} AS k FROM patches
WHERE {USABLE} AND image_row BETWEEN $lo AND $hi ORDER BY image_row
"""
GRID_BATCH_ROWS = 16_384


def store_order(conn, code: str, year: int) -> tuple[np.ndarray, np.ndarray]:
    """The usable patches' image rows and tile keys in store order (row ``r`` of the year's tile
    store is element ``r``)."""
    got = conn.execute(
        STORE_ORDER_SQL, {"code": code, "year": int(year), "ok": STATUS_OK}
    ).fetchnumpy()
    z = np.asarray(got["z"])
    if len(z) and int(z.max()) > MAX_KEY_ZOOM:
        raise ValueError(f"{code}|{year}: `patches` zoom {int(z.max())} above {MAX_KEY_ZOOM}")
    rows = np.asarray(got["image_row"], dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], np.asarray(got["k"], dtype=np.int64)[order]


def matches(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` sits in ``keys`` (unique): (positions in ``wanted`` found,
    their rows in ``keys``); an inner join on 8-byte keys, in ``wanted``'s order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    pos = np.minimum(np.searchsorted(ordered, wanted), max(len(keys) - 1, 0))
    hit = ordered[pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    return np.flatnonzero(hit), order[pos[hit]]


def year_transform(
    settings: SiscoreSettings, warehouse: Warehouse, country, year: int, workers, log
) -> radiometry.BandTransform | None:
    """The transform taking ``year``'s tiles to the country's common radiometry, or None with
    ``radiometry: none``: fitted on every year's per-tile band means, each tile block's computed
    once and stored beside its tile store (``core/imagery/band_means.py``: recomputed, never
    read, when the block's tiles changed), the years' common tiles paired on tile keys.  Another
    year whose tile store cannot be read is left out of the fit (logged); this year's must."""
    if country.models.radiometry == "none":
        return None
    means = {}
    for y in country.years:
        try:
            index, _ = year_tiles(settings, warehouse, country.code, y, columns="stack_path")
            if len(index):
                means[y] = band_means.year_band_means(index["stack_path"].iloc[0], workers, log)
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: TileStoreError
            if y == year:
                raise
            log(f"radiometry: year {y} left out of the fit ({exc})")
    if not means:
        return None
    first, fits = min(means), {}
    with warehouse_lib.reader(warehouse.database, ["patches"]) as conn:
        _, first_keys = store_order(conn, country.code, first)
        for y in sorted(means)[1:]:  # the tiles both years have, in the first year's order
            ref_rows, cur_rows = matches(store_order(conn, country.code, y)[1], first_keys)
            fits[y] = radiometry.fit_aligned(means[first][ref_rows], means[y][cur_rows])
    return radiometry.canonical_from_fits(first, len(means[first]), fits).get(year)


def year_scores(
    model_path: Path,
    store_path: str,
    stack,
    device: str | None,
    fix: radiometry.BandTransform | None,
    workers: WorkerConfig,
    log,
) -> tuple[np.ndarray, str]:
    """The scorer's output for every row of the year's store and how it was read: from the
    stored parts (computed where missing or stale, then every other spec's removed) when
    ``scorer_parts.parts_apply``, else fused from the native tiles."""
    if not len(stack):
        return np.zeros(0), "no tiles"
    config = batch_inference.cached_scorer(model_path, device).config
    if not scorer_parts.parts_apply(config, stack, device):
        raw = batch_inference.map_store(
            batch_inference.score_block, model_path, store_path, stack, device, workers,
            empty=np.zeros(0), log=log, extra=(fix,),
        )  # fmt: skip
        return raw, f"native tiles (fused seeds, {config.views} dihedral view(s))"
    spec = scorer_parts.ensure_parts(store_path, config, fix, workers, log)
    raw = batch_inference.map_store(
        scorer_parts.score_parts_block, model_path, store_path, stack, device, workers,
        empty=np.zeros(0), log=log, extra=(fix, True),
    )  # fmt: skip
    scorer_parts.remove_other_parts(store_path, spec)
    return raw, f"stored parts {spec.digest} (optimised nets, {config.views} dihedral view(s))"


def require_habitation(warehouse: Warehouse, code: str, year: int) -> None:
    """A clear error when the country-year's `habitation` rows were not materialised."""
    n = warehouse.read("habitation", {"country": code, "year": year}, columns="count(*) AS n")
    if n.empty or not int(n["n"].iloc[0]):
        raise FileNotFoundError(f"no habitation for {code}|{year}: materialise 'habitation' first")


def spool_grid(
    warehouse: Warehouse, spool, country, year: int, raw: np.ndarray, zero_uninhabited: bool
) -> dict:
    """Append the `siscore_grid` rows of the country-year to ``spool`` batch by batch and return
    the summary the check and metadata read.  ``score`` is the raw score where the place has a
    habitation row this year and is inhabited this year or in any configured year (else 0,
    unless the settings keep continuous scores); ``inhabited`` the year's verdict.  Year-wide,
    only per-tile numbers live in Python (tile keys, verdict flags, scores: ~30 bytes a tile);
    tile ids reach it one batch of :data:`GRID_BATCH_ROWS` at a time."""
    code, params = country.code, {"code": country.code, "year": int(year), "ok": STATUS_OK}
    with warehouse_lib.reader(warehouse.database, ["patches", "habitation"]) as conn:
        image_rows, keys = store_order(conn, code, year)
        if len(keys) != len(raw):
            raise ValueError(
                f"{code}|{year}: {len(raw)} scores for {len(keys)} usable tiles in "
                "`patches`: re-materialise 'siscore_grid'"
            )
        verdict, unknown, kept = year_verdicts(conn, country, int(year), keys)
        score = np.where(kept | (not zero_uninhabited), raw, 0.0).astype(np.float64)
        for lo in range(0, max(len(keys), 1), GRID_BATCH_ROWS):
            hi = min(lo + GRID_BATCH_ROWS, len(keys))
            bounds = (int(image_rows[lo]), int(image_rows[hi - 1])) if hi > lo else (0, -1)
            batch = conn.execute(BATCH_SQL, {**params, "lo": bounds[0], "hi": bounds[1]}).df()
            if not np.array_equal(batch.pop("k").to_numpy(np.int64), keys[lo:hi]):
                raise ValueError(
                    f"{code}|{year}: `patches` changed while 'siscore_grid' was written: "
                    "materialise it again"
                )
            batch.insert(0, "year", np.int64(year))
            batch.insert(0, "country", code)
            batch["raw_score"] = np.asarray(raw[lo:hi], dtype=np.float64)
            batch["inhabited"] = pd.arrays.BooleanArray(verdict[lo:hi], unknown[lo:hi])
            batch["score"] = score[lo:hi]
            spool.append(batch)
    return grid_summary(score, verdict & ~unknown, keys)


def year_verdicts(conn, country, year: int, keys: np.ndarray):
    """Per store row: the year's habitation verdict, whether it is unknown (no row this year, or
    a NULL verdict), and whether the raw score is kept (a row this year, and inhabited this year
    or in any configured year)."""
    code, n = country.code, len(keys)
    verdict, unknown, has_row = np.zeros(n, bool), np.ones(n, bool), np.zeros(n, bool)
    ever = np.zeros(n, bool)
    for y in sorted({int(v) for v in country.years} | {year}):
        got = conn.execute(VERDICTS_SQL, {"code": code, "year": y}).fetchnumpy()
        hab_keys = np.asarray(got["k"], dtype=np.int64)
        inhabited = np.asarray(got["inhabited"], dtype=bool)
        if y == year:
            if len(np.unique(hab_keys)) != len(hab_keys):
                raise ValueError(
                    f"{code}|{year}: `habitation` holds a tile twice: re-materialise 'habitation'"
                )
            found, rows = matches(keys, hab_keys)
            has_row[rows] = True
            verdict[rows] = inhabited[found]
            unknown[rows] = np.asarray(got["unknown"], dtype=bool)[found]
        if y in country.years:
            ever[matches(keys, hab_keys[inhabited])[1]] = True
    return verdict, unknown, has_row & (verdict | ever)


def grid_summary(score: np.ndarray, inhabited: np.ndarray, keys: np.ndarray) -> dict:
    """What the blocking check and the metadata read, from the rows' own numbers."""
    finite = np.isfinite(score)
    good = score[finite]
    return {
        "not_finite": int((~finite).sum()),
        "outside_unit_interval": int(((good < 0) | (good > 1)).sum()),
        "duplicate_tiles": int(len(keys) - len(np.unique(keys))),
        "min": float(good.min()) if len(good) else 0.0,
        "max": float(good.max()) if len(good) else 0.0,
        "tiles": len(score),
        "mean_score": float(score.mean()) if len(score) else None,
        "inhabited_mean_score": float(score[inhabited].mean()) if inhabited.any() else None,
    }


def unit_interval_result(summary: dict) -> AssetCheckResult:
    """The blocking `scores_in_unit_interval` check (as ``checks.unit_interval_check`` judges a
    frame) from the spooled rows' summary, before they are committed."""
    keys = ("not_finite", "outside_unit_interval", "duplicate_tiles")
    figures = {k: int(summary[k]) for k in keys}
    figures.update(min=float(summary["min"]), max=float(summary["max"]))
    return AssetCheckResult(
        check_name="scores_in_unit_interval",
        passed=not any(figures[k] for k in keys),
        severity=AssetCheckSeverity.ERROR,
        metadata=figures,
    )
