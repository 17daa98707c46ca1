"""siScore of a country-year: the scorer's output with Stage 1's filter applied, and the
invariants the next stages rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd


def siscore_table(
    index: pd.DataFrame,
    raw_scores: np.ndarray,
    habitation: pd.DataFrame,
    *,
    zero_uninhabited: bool = True,
) -> pd.DataFrame:
    """The `siscore_grid` rows: ``raw_score`` for every usable tile, ``score`` the same for
    inhabited tiles and 0 for the others (the uninhabited filter puts them below every POG).
    ``zero_uninhabited=False`` (a scorer trained with the uninhabited images as its bottom cluster)
    keeps the continuous score for every tile; ``inhabited`` still records the filter's verdict."""
    frame = index[["country", "year", "tile_id", "z", "x", "y"]].copy()
    frame["raw_score"] = raw_scores
    frame = frame.merge(habitation[["tile_id", "inhabited"]], on="tile_id", how="left")
    inhabited = frame["inhabited"].fillna(False).astype(bool).to_numpy()
    frame["score"] = np.where(inhabited | (not zero_uninhabited), frame["raw_score"], 0.0)
    return frame


PATCH_COLUMNS = ("country", "year", "tile_id", "granule_id", "row", "col", "epsg")


def patch_siscore_table(
    index: pd.DataFrame,
    raw_scores: np.ndarray,
    p_uninhabited: np.ndarray,
    *,
    zero_uninhabited: bool = True,
    uninhabited_at: float = 0.5,
) -> pd.DataFrame:
    """:func:`siscore_table` for granule patches (ids ``granule/row/col``), whose filter verdict
    comes with them (``p_uninhabited`` per row) rather than from the grid's `habitation` table."""
    frame = index[list(PATCH_COLUMNS)].copy()
    frame["raw_score"] = raw_scores
    frame["p_uninhabited"] = p_uninhabited
    frame["inhabited"] = frame["p_uninhabited"] < uninhabited_at
    frame["score"] = np.where(frame["inhabited"] | (not zero_uninhabited), frame["raw_score"], 0.0)
    return frame


def score_problems(frame: pd.DataFrame) -> dict[str, int]:
    """Counts of what would break the maps, change tables and validation: scores that are not
    finite or outside [0, 1], and tile ids that appear twice.  All zero when the table is sound."""
    scores = frame["score"].to_numpy(dtype=float)
    finite = np.isfinite(scores)
    return {
        "not_finite": int((~finite).sum()),
        "outside_unit_interval": int(((scores[finite] < 0) | (scores[finite] > 1)).sum()),
        "duplicate_tiles": int(frame["tile_id"].duplicated().sum()),
    }


def score_check(frame: pd.DataFrame) -> tuple[bool, dict[str, float]]:
    """Whether a score table may be written (:func:`score_problems` all zero), with the
    problem counts and the score range for the check's metadata."""
    problems = score_problems(frame)
    scores = frame["score"].to_numpy(dtype=float)
    finite = scores[np.isfinite(scores)]
    figures = {
        **problems,
        "min": float(finite.min()) if len(finite) else 0.0,
        "max": float(finite.max()) if len(finite) else 0.0,
    }
    return not any(problems.values()), figures
