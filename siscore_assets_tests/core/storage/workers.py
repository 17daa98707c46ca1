"""Writer processes for the storage concurrency and kill tests (run as ``python -m`` so each is a
real process of its own).

``write DB TABLE YEAR ROWS REPEAT``: write partition ``(SYN, YEAR)`` REPEAT times, every row
carrying the round in ``version``, so a reader can tell a complete partition (ROWS rows, one
version) from a torn one.  ``loop``: the same, forever (until killed).
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pandas as pd

from siscore_assets.core.storage import warehouse


def frame(year: int, rows: int, version: int) -> pd.DataFrame:
    rng = np.random.default_rng(version)
    return pd.DataFrame(
        {
            "country": "SYN",
            "year": year,
            "tile_id": [f"14/{i}/{year}" for i in range(rows)],
            "version": version,
            "score": rng.random(rows),
        }
    )


def main(argv: list[str]) -> None:
    mode, db, table, year, rows = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    rounds = itertools.count() if mode == "loop" else range(int(argv[5]))
    for version in rounds:
        warehouse.write(db, table, frame(year, rows, version), {"country": "SYN", "year": year})


if __name__ == "__main__":
    main(sys.argv[1:])
