"""What `siscore_grid` does for one country-year, beside its asset body: the year's common
radiometry fitted from stored band means, the scores (from stored scorer parts for the ``cpu``
recipe), and the rows joined on 64-bit tile keys and written through the warehouse spool.

What stays year-wide in the process is per-tile numbers only: the year's scores, the tiles'
64-bit keys, image rows and habitation flags (~30 bytes a tile), and, with ``radiometry:
relative``, each year's band means (24 bytes a tile-year) and the row pairs of the tiles two
years share.  The joins run on the keys in numpy; tile ids reach Python one spooled batch at a
time (``common/tile_rows.py``, shared with `habitation` and `cluster_members`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.imagery import band_means, radiometry
from siscore_assets.core.models import batch_inference, scorer_parts
from siscore_assets.core.models.common import checkpoint_digest
from siscore_assets.core.storage import warehouse as warehouse_lib

from ..common.data import year_store
from ..common.resources import SiscoreSettings, Warehouse
from ..common.tile_rows import (
    matches,
    spool_year,
    store_order,
    year_flags,
)


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
            store_path, _ = year_store(settings, warehouse, country.code, y)
            if store_path:
                means[y] = band_means.year_band_means(store_path, workers, log)
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
) -> tuple[np.ndarray, str, str]:
    """The scorer's output for every row of the year's store, how it was read and the scorer
    file's digest (``checkpoint_digest``, the rows' ``scorer``): from the stored parts
    (computed where missing or stale, then every other spec's removed) when
    ``scorer_parts.parts_apply``, else fused from the native tiles.  A scorer retrained while
    the year is scored (its tasks load the file they find) fails the year: no partition holds
    rows of two scorers."""
    before = _stamp(model_path)
    digest = checkpoint_digest(model_path)
    if not len(stack):
        return np.zeros(0), "no tiles", digest
    raw, read_from = _scores(model_path, store_path, stack, device, fix, workers, log)
    if _stamp(model_path) != before:
        raise RuntimeError(
            f"{model_path} changed while {store_path} was scored (the scorer was retrained): "
            "materialise siscore_grid again"
        )
    return raw, read_from, digest


def _stamp(path: Path) -> tuple[int, int]:
    st = Path(path).stat()
    return st.st_mtime_ns, st.st_size


def _scores(model_path, store_path, stack, device, fix, workers, log) -> tuple[np.ndarray, str]:
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


def spool_grid(
    warehouse: Warehouse,
    spool,
    country,
    year: int,
    raw: np.ndarray,
    zero_uninhabited: bool,
    order: tuple[np.ndarray, np.ndarray] | None = None,
    scorer: str | None = None,
) -> dict:
    """Append the `siscore_grid` rows of the country-year to ``spool`` batch by batch and return
    the summary the check and metadata read.  ``score`` is the raw score where the place has a
    habitation row this year and is inhabited this year or in any configured year (else 0,
    unless the settings keep continuous scores); ``inhabited`` the year's verdict.  Year-wide,
    only per-tile numbers live in Python (tile keys, verdict flags, scores: ~30 bytes a tile);
    tile ids reach it one batch at a time (``common/tile_rows.py``).  ``order``: the store order
    the scores were computed in (``tile_rows.year_order`` before scoring; default: read now);
    ``scorer``: the scorer file's digest, every row's ``scorer`` (readers that pair years
    refuse two of them: ``common/data.require_one_scorer``)."""
    code = country.code
    with warehouse_lib.reader(warehouse.database, ["patches", "habitation"]) as conn:
        image_rows, keys = order if order is not None else store_order(conn, code, year)
        if len(keys) != len(raw):
            raise ValueError(
                f"{code}|{year}: {len(raw)} scores for {len(keys)} usable tiles in "
                "`patches`: re-materialise 'siscore_grid'"
            )
        verdict, unknown, kept = year_verdicts(conn, country, int(year), keys)
        score = np.where(kept | (not zero_uninhabited), raw, 0.0).astype(np.float64)
        spool_year(
            conn, spool, code, year, image_rows, keys,
            lambda rows: {
                "raw_score": np.asarray(raw[rows], dtype=np.float64),
                "inhabited": pd.arrays.BooleanArray(verdict[rows], unknown[rows]),
                "score": score[rows],
                "scorer": np.full(rows.stop - rows.start, scorer, dtype=object),
            },
            "siscore_grid",
        )  # fmt: skip
    return grid_summary(score, verdict & ~unknown, keys)


def year_verdicts(conn, country, year: int, keys: np.ndarray):
    """Per store row: the year's habitation verdict, whether it is unknown (no row this year, or
    a NULL verdict), and whether the raw score is kept (a row this year, and inhabited this year
    or in any configured year)."""
    code, n = country.code, len(keys)
    flags = year_flags(conn, code, year, keys, urban=False)
    ever = np.zeros(n, bool)
    for y in sorted(int(v) for v in country.years):
        other = flags if y == year else year_flags(conn, code, y, keys, urban=False, unique=False)
        ever |= other["inhabited"]
    verdict, unknown = flags["inhabited"], flags["unknown"]
    return verdict, unknown, flags["has_row"] & (verdict | ever)


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
