"""POG ensemble benchmark: the robust re-weighting to ||Δ|| < 1e-6, fast path vs baselines.

Timed: from the normalised (annotators x clusters) rank matrix to converged weights and
consensus -- the part that grows with the number of POGs and clusters (tiering works on the
C consensus values and is timed separately).  Three implementations of the same iteration:

* ``fast``      -- ``reweight_fast``: float32, centred, two BLAS matrix-vector products a round;
* ``reference`` -- ``reweight_reference``: the straightforward float64 numpy loop over rounds;
* ``per-POG``   -- a Python loop over annotators inside each round (the "loop ensemble" of the
  published reproduction), on the small cases only.

Inputs are synthetic POGs: noisy rankings of a hidden order cut into tiers of 3 (ties at the
averaged rank), 5 % reversed (adversaries).  Medians over many repeats, because other work may
share the CPU; the load average is printed before and after.  Run:
``python -m benchmarks.pog_bench [--repeats 60]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

from siscore_assets.core.ranking import (
    choose_tiers,
    ensemble_ranks,
    normalise_ranks,
    reweight_fast,
    reweight_reference,
)

CASES = [(100_000, 22), (10_000, 22), (10, 22), (10, 1_000), (10, 10_000)]
TARGETS_MS = {(100_000, 22): 15.0, (10, 10_000): 2.0}


def synthetic_ranks(a_n: int, c_n: int, seed: int = 0, tier: int = 3) -> np.ndarray:
    """(A, C) averaged ranks, laid out like ``rank_matrix`` (longer axis contiguous)."""
    rng = np.random.default_rng(seed)
    score = rng.permutation(c_n) + rng.normal(0, c_n / 6, size=(a_n, c_n))
    score[rng.random(a_n) < 0.05] *= -1
    ranks = rankdata(np.ceil(rankdata(score, axis=1) / tier), axis=1)
    return np.asfortranarray(ranks) if a_n > c_n else np.ascontiguousarray(ranks)


def reweight_per_pog(x: np.ndarray, tol: float = 1e-6, max_iter: int = 1000):
    """The same iteration with a Python loop over annotators (complete rankings only)."""
    from siscore_assets.core.ranking import SCALE_FLOOR

    rows = [np.ascontiguousarray(row) for row in x]
    a_n = len(rows)
    w = [1.0 / a_n] * a_n
    cons = sum(wa * row for wa, row in zip(w, rows)) / sum(w)
    floor = 0.0
    for it in range(1, max_iter + 1):
        d2 = [float(np.mean((row - cons) ** 2)) for row in rows]
        if it == 1:
            floor = SCALE_FLOOR * sum(d2) / a_n
        sigma2 = max(float(np.median(d2)), floor)
        lo = min(d2)
        w = [float(np.exp(-(d - lo) / sigma2)) for d in d2]
        total = sum(w)
        new = sum(wa * row for wa, row in zip(w, rows)) / total
        step = float(np.linalg.norm(new - cons))
        cons = new
        if step < tol:
            return np.array(w) / total, cons, it, True
    return np.array(w) / total, cons, max_iter, False


def timings_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) of ``repeats`` timed calls after one warm-up (caches, BLAS controller)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3), float(np.min(times) * 1e3)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return timings_ms(fn, repeats)[0]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    print(f"load average before: {load()}")
    print(
        f"{'POGs':>8} {'clusters':>8} {'rounds':>6} {'fast ms':>9} {'(best)':>7} {'ref ms':>9} "
        f"{'per-POG ms':>11} {'ref/fast':>8} {'loop/fast':>9} {'max|Δw|/w':>10} {'target':>8}"
    )
    for a_n, c_n in CASES:
        ranks = synthetic_ranks(a_n, c_n)
        x = normalise_ranks(ranks)  # complete rankings: no mask
        mask = np.ones(x.shape, dtype=bool)
        w_f, c_f, it_f, ok_f = reweight_fast(x)
        w_r, c_r, it_r, ok_r = reweight_reference(x, mask)
        assert ok_f and ok_r, "did not converge"
        err = float(np.max(np.abs(w_f - w_r) / w_r.max()))
        fast, best = timings_ms(lambda x=x: reweight_fast(x), args.repeats)
        xr = np.ascontiguousarray(x)  # the reference on its own best layout (row-major)
        ref = median_ms(lambda x=xr, m=mask: reweight_reference(x, m), max(5, args.repeats // 4))
        loop = median_ms(lambda x=x: reweight_per_pog(x), 3) if a_n <= 10_000 else float("nan")
        target = TARGETS_MS.get((a_n, c_n))
        verdict = "" if target is None else f"{'OK' if fast <= target else 'MISS'} ≤{target:g}"
        print(
            f"{a_n:>8} {c_n:>8} {it_f:>6} {fast:>9.2f} {best:>7.2f} {ref:>9.2f} {loop:>11.1f} "
            f"{ref / fast:>8.1f} {loop / fast:>9.1f} {err:>10.1e} {verdict:>8}"
        )
    # the rest of an ensemble at the real size: normalising ranks and choosing tiers
    ranks = synthetic_ranks(100_000, 22)
    total = median_ms(lambda: ensemble_ranks(ranks, list(range(22))), 5)
    cons = ensemble_ranks(ranks[:10], list(range(22))).consensus
    tiers = median_ms(lambda: choose_tiers(cons, ranks=ranks[:10]), 20)
    print(
        f"whole ensemble_ranks, 100,000 x 22 (normalise + re-weight + tier by agreement): "
        f"{total:.0f} ms; choose_tiers on 22 consensus values, 10 annotators: {tiers:.2f} ms"
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
