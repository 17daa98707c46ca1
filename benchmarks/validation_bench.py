"""Validation benchmark: bootstrap throughput of the grid (Spearman) and district (R²) CIs.

A SYN-sized country-year (1,600 tiles, 16 districts) with 1,000 resamples per pair, as
`validation_grid` / `validation_district` run them.  Prints resamples per second and the time of
one full validation table (6 models x 4 proxies x 2 subsets).  Run:
`python -m benchmarks.validation_bench`.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import pandas as pd

from siscore_assets.core.analysis import validation


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    n_tiles, n_boot = 1600, validation.DEFAULT_BOOT
    dev = rng.uniform(size=n_tiles)
    frame = pd.DataFrame({f"m{i}": dev + rng.normal(0, 0.1 * (i + 1), n_tiles) for i in range(6)})
    for j in range(4):
        frame[f"p{j}"] = np.expm1(3 * dev + rng.normal(0, 0.3, n_tiles))
    frame["inhabited"] = dev > 0.4
    x, y = frame["m0"].to_numpy(), frame["p0"].to_numpy()
    t_spear = _best(lambda: validation.bootstrap_spearman(x, y, n_boot=n_boot, seed=0))
    t_r2 = _best(lambda: validation.bootstrap_r2(x[:16], y[:16], n_boot=n_boot, seed=0))
    models, proxies = [f"m{i}" for i in range(6)], [f"p{j}" for j in range(4)]
    t_table = _best(
        lambda: [
            validation.grid_validation(frame, models, proxies, n_boot=n_boot, keep_col=k)
            for k in (None, "inhabited")
        ],
        repeat=1,
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"Spearman bootstrap, {n_tiles} tiles x {n_boot} resamples: {t_spear * 1e3:.0f} ms "
        f"({n_boot / t_spear:,.0f} resamples/s)"
    )
    print(f"district R² bootstrap, 16 districts x {n_boot} resamples: {t_r2 * 1e3:.1f} ms")
    print(f"grid validation table, 6 models x 4 proxies x 2 subsets: {t_table:.1f} s")


if __name__ == "__main__":
    main()
