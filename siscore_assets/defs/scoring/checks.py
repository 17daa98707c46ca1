"""Scoring's checks: what the maps, change tables and validation rely on, judged before the
rows are written (blocking), so a broken score table is never stored."""

from collections.abc import Mapping

from dagster import AssetCheckResult, AssetCheckSeverity, MaterializeResult

from siscore_assets.core.models import siscore

from ..common.resources import Warehouse


def unit_interval_check(frame) -> AssetCheckResult:
    """The blocking `scores_in_unit_interval` check of a score table, judged before writing."""
    ok, figures = siscore.score_check(frame)
    return AssetCheckResult(
        check_name="scores_in_unit_interval",
        passed=ok,
        severity=AssetCheckSeverity.ERROR,
        metadata=figures,
    )


def rejected_grid(
    warehouse: Warehouse, keys: Mapping[str, object], check: AssetCheckResult
) -> MaterializeResult:
    """A `siscore_grid` partition whose new rows failed the blocking check: none is written, and
    the rows an earlier run left are removed, since they belong to earlier inputs (another
    scorer, imagery or score file) that this materialisation replaced; a change table or map
    pairing them with a year scored by the new inputs would mix two scorers.  Other partitions
    are untouched.  (An error raised before this point records nothing and keeps them.)"""
    removed = warehouse.clear("siscore_grid", keys)
    return MaterializeResult(
        metadata={"status": "rejected", "rows_written": 0, "earlier_rows_removed": removed},
        check_results=[check],
    )
