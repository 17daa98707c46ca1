"""What `siscore_grid` does for one country-year, beside its asset body: the year's common
radiometry fitted from stored band means, the scores (from stored scorer parts for the ``cpu``
recipe), and the rows joined and written by DuckDB through the warehouse spool.

What stays year-wide in the process: the year's scores (float64, 8 bytes a tile) with their row
numbers, and, with ``radiometry: relative``, each year's band means (24 bytes a tile-year) and
the row pairs of the tiles two years share.  Tile ids, the habitation join and the table itself
live in DuckDB (which spills past its memory limit) and reach Python as spooled batches of
:data:`GRID_BATCH_VECTORS` x 2,048 rows.
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

#: The tiles two years share, as (row in the first year's store, row in the other's), in the
#: first year's order (the order ``radiometry.fit_relative`` takes them in).
ALIGNED_SQL = """
WITH a AS (SELECT tile_id, row_number() OVER (ORDER BY image_row) - 1 AS r FROM patches
           WHERE country = $code AND year = $first AND status = $ok),
     b AS (SELECT tile_id, row_number() OVER (ORDER BY image_row) - 1 AS r FROM patches
           WHERE country = $code AND year = $year AND status = $ok)
SELECT a.r AS ref_row, b.r AS cur_row FROM a JOIN b USING (tile_id) ORDER BY a.r
"""

#: The `siscore_grid` rows of a country-year from the scores by store row (``scores``): the
#: patches' tile ids in store order, the year's habitation verdict (``inhabited``), and
#: ``score`` = the raw score where the place is inhabited in any configured year and in this
#: year's habitation table (else 0, unless ``$keep``: continuous scores for every tile).
GRID_SQL = """
WITH p AS (SELECT tile_id, z, x, y, row_number() OVER (ORDER BY image_row) - 1 AS r
           FROM patches WHERE country = $code AND year = $year AND status = $ok),
     h AS (SELECT tile_id, inhabited FROM habitation WHERE country = $code AND year = $year),
     ever AS (SELECT DISTINCT tile_id FROM habitation
              WHERE country = $code AND list_contains($years, year) AND inhabited)
SELECT $code AS country, CAST($year AS BIGINT) AS year, p.tile_id, p.z, p.x, p.y,
       s.raw_score, h.inhabited,
       CASE WHEN $keep OR (h.tile_id IS NOT NULL AND (coalesce(h.inhabited, FALSE)
                                                       OR ever.tile_id IS NOT NULL))
            THEN s.raw_score ELSE 0.0 END AS score
FROM p JOIN scores AS s ON s.r = p.r
LEFT JOIN h ON h.tile_id = p.tile_id
LEFT JOIN ever ON ever.tile_id = p.tile_id
ORDER BY p.r
"""

#: What the blocking check and the metadata read of the spooled rows.
SUMMARY_SQL = """
SELECT count(*) FILTER (WHERE score IS NULL OR NOT isfinite(score)) AS not_finite,
       count(*) FILTER (WHERE isfinite(score) AND (score < 0 OR score > 1))
           AS outside_unit_interval,
       count(tile_id) - count(DISTINCT tile_id) AS duplicate_tiles,
       coalesce(min(score) FILTER (WHERE isfinite(score)), 0.0) AS min,
       coalesce(max(score) FILTER (WHERE isfinite(score)), 0.0) AS max,
       count(*) AS tiles,
       avg(score) AS mean_score,
       avg(score) FILTER (WHERE coalesce(inhabited, FALSE)) AS inhabited_mean_score
FROM {spool}
"""
GRID_BATCH_VECTORS = 32  # 65,536 rows a spooled batch


def year_transform(
    settings: SiscoreSettings, warehouse: Warehouse, country, year: int, workers, log
) -> radiometry.BandTransform | None:
    """The transform taking ``year``'s tiles to the country's common radiometry, or None with
    ``radiometry: none``: fitted on every year's per-tile band means, each tile block's computed
    once and stored beside its tile store (``core/imagery/band_means.py``: recomputed, never
    read, when the block's tiles changed), the years' common tiles paired in DuckDB.  Another
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
    for y in sorted(means)[1:]:
        pairs = warehouse.query(
            ALIGNED_SQL, {"code": country.code, "first": first, "year": y, "ok": STATUS_OK}
        )
        ref = means[first][pairs["ref_row"].to_numpy(np.int64)]
        fits[y] = radiometry.fit_aligned(ref, means[y][pairs["cur_row"].to_numpy(np.int64)])
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
    """Append the `siscore_grid` rows of the country-year to ``spool`` batch by batch (joined in
    DuckDB, never a year-wide frame of tile ids); the summary the check and metadata read."""
    scores = pd.DataFrame({"r": np.arange(len(raw), dtype=np.int64), "raw_score": raw})
    params = {
        "code": country.code,
        "year": int(year),
        "ok": STATUS_OK,
        "years": [int(y) for y in country.years],
        "keep": not zero_uninhabited,
    }
    with warehouse_lib.reader(warehouse.database, ["patches", "habitation"]) as conn:
        conn.register("scores", scores)
        usable = conn.execute(
            "SELECT count(*) FROM patches WHERE country = ? AND year = ? AND status = ?",
            [country.code, int(year), STATUS_OK],
        ).fetchone()[0]
        if usable != len(raw):
            raise ValueError(
                f"{country.code}|{year}: {len(raw)} scores for {usable} usable tiles in "
                "`patches`: re-materialise 'siscore_grid'"
            )
        result = conn.execute(GRID_SQL, params)
        while True:
            batch = result.fetch_df_chunk(GRID_BATCH_VECTORS)
            if batch.empty and spool.files:
                break
            spool.append(batch)
            if batch.empty:
                break
    return spool.query(SUMMARY_SQL).iloc[0].to_dict()


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
