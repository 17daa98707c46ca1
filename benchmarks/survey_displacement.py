"""Survey displacement benchmark: how much of a survey proxy the displacement handling recovers.

On SYN (the embedded country, 40 x 40 tiles) survey clusters are planted at inhabited tiles
drawn with probability proportional to population (as DHS samples enumeration areas), at a
uniform place inside the tile, with a value = the tile's true development + N(0, 0.05) (sampling
noise), flagged urban where the tile is. Their published coordinates are displaced by DHS's rule
(urban up to 2 km, rural up to 5 km, 1 % of rural up to 10 km; uniform angle and distance;
redrawn if outside the country). Tile values are then made five ways: from the true places (the
oracle), from the published places ignoring the displacement (each point in the tile it lands
in), and with the displacement handled (``surveys.tile_values``: the exact expectation, tiles
with at least ``--min-mass`` expected clusters), and handled with the prior that clusters are in
inhabited tiles (also for the displacement-ignoring values: only inhabited tiles kept; the
demo's own uninhabited filter with ``--warehouse``, else the truth's). Printed: Spearman rho of
each against the tiles' true development (and against the demo's siScore with ``--warehouse``),
over the tiles each method gives a value, and (``rho_common``) over the inhabited tiles that
both the displacement-ignoring and the handled method give one. Run: `python -m
benchmarks.survey_displacement [--clusters 300] [--seeds 5] [--warehouse W]`.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from siscore_assets.core.analysis import surveys
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec

YEAR = 2016


def plant(country: SyntheticCountry, n: int, seed: int, rule: surveys.Displacement):
    """(true points, published points): DataFrames of x, y, lat, value, year, urban, weight."""
    rng = np.random.default_rng([seed, 3003])
    truth = country.tile_truth(YEAR)
    pop = truth["population"].to_numpy(float)
    pick = rng.choice(len(truth), size=n, replace=True, p=pop / pop.sum())
    left, bottom, right, top = country.bounds_3857
    side = (right - left) / country.spec.nx
    col = truth["x"].to_numpy()[pick] - country.spec.x0
    row = truth["y"].to_numpy()[pick] - country.spec.y0
    x = left + (col + rng.uniform(size=n)) * side
    y = top - (row + rng.uniform(size=n)) * side
    lat = np.degrees(2 * np.arctan(np.exp(y / surveys.EARTH_RADIUS_M)) - np.pi / 2)
    value = truth["development"].to_numpy()[pick] + rng.normal(0, 0.05, n)
    urban = truth["urban"].to_numpy()[pick]
    true = pd.DataFrame(
        {"x": x, "y": y, "lat": lat, "value": value, "year": YEAR, "urban": urban, "weight": 1.0}
    )
    moved = true.copy()
    for i in range(n):
        comps = rule.components(bool(urban[i]))
        probs = np.array([p for p, _ in comps])
        radius = comps[rng.choice(len(comps), p=probs / probs.sum())][1] * 1000.0
        for _ in range(100):
            d = rng.uniform(0, radius) / np.cos(np.radians(lat[i]))
            a = rng.uniform(0, 2 * np.pi)
            nx, ny = x[i] + d * np.cos(a), y[i] + d * np.sin(a)
            if left <= nx < right and bottom < ny <= top:
                moved.loc[i, ["x", "y"]] = nx, ny
                break
    return true, moved


def rho_against(values: pd.DataFrame, reference: pd.Series, tiles: pd.Index | None = None):
    v = values.set_index(["x", "y"])["value"]
    if tiles is not None:
        v = v[v.index.isin(tiles)]
    ref = reference.reindex(v.index)
    ok = ref.notna()
    return float(spearmanr(v[ok], ref[ok]).statistic), int(ok.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="settings were chosen on 100-104")
    ap.add_argument("--min-mass", type=float, default=0.3)
    ap.add_argument("--warehouse", help="a SYN warehouse: also compare with its siScore")
    args = ap.parse_args()
    country = SyntheticCountry(SyntheticSpec())
    rule = surveys.Displacement()
    truth = country.tile_truth(YEAR)
    refs = {"true development": truth.set_index(["x", "y"])["development"]}
    inhabited = truth.set_index(["x", "y"])["inhabited"]
    if args.warehouse:
        import duckdb

        with duckdb.connect(args.warehouse, read_only=True) as con:
            g = con.execute(
                "SELECT x, y, score FROM siscore_grid WHERE country = 'SYN' AND year = ?", [YEAR]
            ).df()
        refs["demo siScore"] = g.set_index(["x", "y"])["score"]
        inhabited = refs["demo siScore"] > 0  # the demo's own uninhabited filter: score 0
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        true, moved = plant(country, args.clusters, seed, rule)
        oracle = surveys.tile_values(true, 14)
        naive = surveys.tile_values(moved, 14)
        aware = surveys.tile_values(moved, 14, rule, min_mass=args.min_mass)
        prior = surveys.tile_values(moved, 14, rule, min_mass=args.min_mass, prior=inhabited)
        naive_inh = naive[naive.set_index(["x", "y"]).index.map(inhabited).fillna(False)]
        methods = (
            ("true places", oracle), ("ignored", naive),
            ("ignored, inhabited tiles only", naive_inh), ("handled", aware),
            ("handled + inhabited prior", prior),
        )  # fmt: skip
        # the tiles both inhabited-aware methods give a value: one set for a like-for-like rho
        common = naive_inh.set_index(["x", "y"]).index.intersection(
            prior.set_index(["x", "y"]).index
        )
        for ref_name, ref in refs.items():
            for method, vals in methods:
                rho, n = rho_against(vals, ref)
                rho_c, n_c = rho_against(vals, ref, common)
                rows.append(
                    {"reference": ref_name, "method": method, "seed": seed, "rho": rho,
                     "tiles": n, "rho_common": rho_c, "common_tiles": n_c}
                )  # fmt: skip
    table = pd.DataFrame(rows)
    summary = table.groupby(["reference", "method"], sort=False).agg(
        rho=("rho", "mean"),
        rho_sd=("rho", "std"),
        tiles=("tiles", "mean"),
        rho_common=("rho_common", "mean"),
        common_tiles=("common_tiles", "mean"),
    )
    print(
        f"SYN {YEAR}: {args.clusters} clusters x {args.seeds} seeds, DHS displacement, "
        f"min_mass {args.min_mass}"
    )
    print(summary.reset_index().to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
