"""Whether two runs wrote the same tables: every table of warehouse A against B's.

Reproducibility check behind RESULTS.md's "identical" rows: the same input must give the same
siScore.  Per table, partition file by partition file (one country-year in memory at a time): row
counts, then the rows sorted by their non-float columns, the largest
absolute difference of the float columns, and whether the other columns are equal.  Columns
that legitimately differ between two runs (file paths under each run's data root, timings in
milliseconds) are reported apart, not counted.

    python -m benchmarks.same_outputs /tmp/run_a/warehouse /tmp/run_b/warehouse
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

#: Columns that name files under a run's own data root, or time the run: expected to differ.
RUN_SPECIFIC = ("path", "stack_path", "fill_ms", "write_ms")


def read_file(path: Path) -> pd.DataFrame:
    """One partition's rows (a country-year at most: a country is never read whole)."""
    with duckdb.connect() as conn:
        return conn.execute(f"SELECT * FROM read_parquet('{path}')").df()


def compare_table(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Rows, largest float difference, other columns equal, run-specific columns that differ."""
    if len(a) != len(b) or set(a.columns) != set(b.columns):
        return {"rows": f"{len(a)} vs {len(b)}", "columns": sorted(set(a.columns) ^ set(b.columns))}
    b = b[a.columns]
    floats = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    keys = [c for c in a.columns if c not in floats and c not in RUN_SPECIFIC]
    a = a.sort_values(keys, key=lambda s: s.astype(str)).reset_index(drop=True) if keys else a
    b = b.sort_values(keys, key=lambda s: s.astype(str)).reset_index(drop=True) if keys else b
    worst = 0.0
    for c in (c for c in floats if c not in RUN_SPECIFIC):
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        if not (np.isnan(x) == np.isnan(y)).all():
            return {"rows": len(a), "missing values differ": c}
        both = ~np.isnan(x)
        if both.any():
            worst = max(worst, float(np.abs(x[both] - y[both]).max()))
    unequal = [c for c in keys if not a[c].astype(str).equals(b[c].astype(str))]
    run_specific = [c for c in RUN_SPECIFIC if c in a.columns and not a[c].equals(b[c])]
    return {
        "rows": len(a),
        "max_float_difference": worst,
        "other_columns_unequal": unequal,
        "run_specific_differ": run_specific,
    }


def compare_folder(a: Path, b: Path) -> dict:
    """:func:`compare_table` partition file by partition file (the warehouse writes one file per
    partition, named by its keys), summed over the table."""
    names = sorted(p.name for p in a.glob("*.parquet"))
    others = sorted(p.name for p in b.glob("*.parquet"))
    if names != others:
        return {"partition files differ": sorted(set(names) ^ set(others))}
    total: dict = {"rows": 0, "max_float_difference": 0.0}
    unequal: set[str] = set()
    run_specific: set[str] = set()
    for name in names:
        got = compare_table(read_file(a / name), read_file(b / name))
        if "max_float_difference" not in got:
            return {"partition": name, **got}
        total["rows"] += got["rows"]
        total["max_float_difference"] = max(
            total["max_float_difference"], got["max_float_difference"]
        )
        unequal.update(got["other_columns_unequal"])
        run_specific.update(got["run_specific_differ"])
    total["other_columns_unequal"] = sorted(unequal)
    total["run_specific_differ"] = sorted(run_specific)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="a warehouse's table folder (<data root>/warehouse)")
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    same = True
    for folder in sorted(p for p in args.a.iterdir() if p.is_dir() and any(p.glob("*.parquet"))):
        other = args.b / folder.name
        if not other.is_dir():
            print(f"{folder.name}: not in {args.b}")
            same = False
            continue
        got = compare_folder(folder, other)
        same &= got.get("max_float_difference") == 0.0 and not got.get("other_columns_unequal")
        print(f"{folder.name}: {got}")
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
