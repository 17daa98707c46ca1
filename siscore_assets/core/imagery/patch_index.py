"""The `patches` index of one country-year, written batch by batch, and what is reported of it.

A year's index arrives in batches (a tile folder is cut block by block); each batch gets the
partition's keys and the store folder, goes to a spool (``append`` / ``query``: SQL over the rows
written so far, ``{spool}`` standing for them) and is summed there, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from siscore_assets.core.imagery import patches as patches_lib

#: Tiles shown in the asset's sample contact sheet.
SAMPLE_TILES = 32


class Spool(Protocol):
    """What :func:`spool_index` needs of a partition spool."""

    def append(self, frame: pd.DataFrame) -> Any: ...

    def query(self, sql: str) -> pd.DataFrame: ...


@dataclass
class IndexSummary:
    """Tiles by status, the not-scored tiles in one line ('' when all usable) and how many tile
    ids appear more than once (the index must not be committed when any does)."""

    counts: dict[str, int]
    problems: str
    duplicates: int

    def status_metadata(self) -> dict[str, int]:
        """Tile counts by status, under the asset's metadata names."""
        return {
            "usable_tiles": self.counts.get(patches_lib.STATUS_OK, 0),
            "blank_tiles": self.counts.get(patches_lib.STATUS_BLANK, 0),
            "cloudy_tiles": self.counts.get(patches_lib.STATUS_CLOUDY, 0),
            "corrupt_granules_or_tiles": self.counts.get(patches_lib.STATUS_CORRUPT, 0),
        }


def spool_index(
    rows: Spool,
    batches: Iterable[pd.DataFrame],
    country: str,
    year: int,
    stack_path: str,
    log_warning: Callable[[str], Any] | None = None,
) -> IndexSummary:
    """Append every batch (with ``country``, ``year`` first and ``stack_path`` last) to ``rows``
    and sum the spooled index; the not-scored tiles are logged as one warning."""
    for frame in batches:
        frame.insert(0, "year", year)
        frame.insert(0, "country", country)
        frame["stack_path"] = stack_path
        rows.append(frame)
    counts = patches_lib.status_counts(rows.query)
    summary = patches_lib.problem_summary_of(counts)
    if summary and log_warning is not None:
        log_warning(f"{country} {year}: tiles not scored: {summary} (rows in `patches`)")
    return IndexSummary(counts, summary, patches_lib.duplicate_tile_count(rows.query))


def sample_tiles(stack, n: int = SAMPLE_TILES, seed: int = 0) -> np.ndarray:
    """A seeded sample of up to ``n`` of the store's tiles, in store order."""
    rng = np.random.default_rng(seed)
    if not len(stack):
        return np.zeros((0, 1, 1, 3), np.uint8)
    return stack[np.sort(rng.choice(len(stack), size=min(n, len(stack)), replace=False))]
