"""The input of an overlay: one granule's patch scores as a (rows, cols) block, checked once for
both fills (numpy in ``mosaic``, CUDA in ``mosaic_cuda``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def scores_block(
    df: pd.DataFrame,
    x0: int,
    y0: int,
    nx: int,
    ny: int,
    *,
    value_col: str = "score",
    mask_col: str | None = None,
) -> np.ndarray:
    """The (ny, nx) float32 patch scores of one granule's tile block, NaN where a patch has no
    score (not scored, or ``mask_col`` false).  Tiles of ``df`` outside the block are ignored."""
    x = df["x"].to_numpy(dtype=np.int64) - x0
    y = df["y"].to_numpy(dtype=np.int64) - y0
    inside = (x >= 0) & (x < nx) & (y >= 0) & (y < ny)
    values = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=np.float32)
    if mask_col is not None:
        values = np.where(
            df[mask_col].fillna(False).astype(bool).to_numpy(), values, np.float32(np.nan)
        )
    block = np.full((ny, nx), np.nan, dtype=np.float32)
    if pd.DataFrame({"x": x[inside], "y": y[inside]}).duplicated().any():
        raise ValueError("duplicate (x, y) tiles in the granule's block")
    block[y[inside], x[inside]] = values[inside]
    return block


def check_scores(scores: np.ndarray, tile_px: int) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"patch scores must be a non-empty 2-D (rows, cols) array, got shape {scores.shape}"
        )
    if tile_px < 1:
        raise ValueError(f"tile_px must be >= 1, got {tile_px}")
    return np.ascontiguousarray(scores, dtype=np.float32)
