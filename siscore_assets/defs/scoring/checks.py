"""Scoring's checks: what the maps, change tables and validation rely on, judged before the
rows are written (blocking), so a broken score table is never stored."""

from dagster import AssetCheckResult, AssetCheckSeverity

from siscore_assets.core.models import siscore


def unit_interval_check(frame) -> AssetCheckResult:
    """The blocking `scores_in_unit_interval` check of a score table, judged before writing."""
    ok, figures = siscore.score_check(frame)
    return AssetCheckResult(
        check_name="scores_in_unit_interval",
        passed=ok,
        severity=AssetCheckSeverity.ERROR,
        metadata=figures,
    )
