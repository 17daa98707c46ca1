"""Demo benchmark: the whole SYN pipeline from empty storage, timed by step.

Prints wall time, where the time goes (per asset, summed over partitions), and throughputs
(tiles/s for patch cutting and scoring).  Run with `make bench`; copy the figures to
benchmarks/RESULTS.md with the machine they came from.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import duckdb
import torch

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.orchestration.runner import materialize_country


def main() -> None:
    reg = load_countries()
    code = reg.default
    years = list(reg.get(code).years)
    with tempfile.TemporaryDirectory(prefix="siscore-bench-") as tmp:
        root = Path(tmp)
        defs = build_definitions(
            reg, data_root=str(root / "data"), warehouse_path=str(root / "w.duckdb")
        )
        from dagster import DagsterInstance

        t0 = time.perf_counter()
        report = materialize_country(
            defs, code, years, instance=DagsterInstance.ephemeral(), log=lambda _: None
        )
        wall = time.perf_counter() - t0
        with duckdb.connect(str(root / "w.duckdb"), read_only=True) as conn:
            tiles = conn.execute(
                "SELECT count(*) FROM siscore_grid WHERE country = ?", [code]
            ).fetchone()[0]
            rho = conn.execute(
                "SELECT year, spearman_rho FROM validation_grid "
                "WHERE country = ? AND model = 'siscore' "
                "AND proxy = 'building_floor_area_m2' AND subset = 'all' ORDER BY year",
                [code],
            ).fetchall()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}"
    )
    print(f"country {code}, years {years}: {tiles} tiles scored")
    print(f"demo wall time (after setup): {wall:.1f} s")
    steps = {k: v for k, v in report.seconds.items()}
    total = sum(steps.values())
    for name, sec in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {sec:7.1f} s  {100 * sec / total:5.1f} %")
    if steps.get("siscore_grid"):
        print(
            f"scoring throughput: {tiles / steps['siscore_grid']:.0f} tiles/s "
            "(incl. warehouse write)"
        )
    if steps.get("patches"):
        print(f"patch cutting throughput: {tiles / steps['patches']:.0f} tiles/s")
    print("Spearman rho vs building floor area: " + ", ".join(f"{y} {r:.3f}" for y, r in rho))


if __name__ == "__main__":
    main()
