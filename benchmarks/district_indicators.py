"""District-indicator benchmark: seed 004's multi-level model against its baselines.

A many-district synthetic country (64 x 64 tiles, 160 districts from 2 to ~270 tiles, the
"clustered" layout) whose district statistic has an agglomeration effect
(``geography.district_indicator``: output per head grows as density^0.3).  Tile scores are a
stand-in for a trained siScore: the true development plus Gaussian noise (sd 0.08), clipped to
[0, 1]; the embeddings are the rendered tiles' colour / gradient statistics reduced to 3 PCA
components.  Nothing is tuned: the ridge penalty is fixed at 1.  Prints R² (original scale,
held-out 20 %) and Spearman over 100 seeded 80/20 splits per method.  Run:
`python -m benchmarks.district_indicators [--splits 100] [--noise 0.08]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd

from siscore_assets.core.analysis import indicators
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.core.imagery.synthetic.geography import district_indicator

SPEC = SyntheticSpec(
    seed=11, nx=64, ny=64, n_districts=160, n_provinces=4, district_layout="clustered"
)


def image_embedding(images: np.ndarray) -> np.ndarray:
    """Per tile: mean and sd of each channel and mean gradient magnitude (7 numbers)."""
    x = images.astype(np.float32) / 255.0
    g = x.mean(axis=3)
    grad = np.abs(np.diff(g, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(g, axis=2)).mean(
        axis=(1, 2)
    )
    return np.column_stack([x.mean(axis=(1, 2)), x.std(axis=(1, 2)), grad])


def synthetic_case(noise: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tiles with district_id, score, nightlight, e0..e2; districts with the indicator)."""
    country = SyntheticCountry(SPEC)
    year = SPEC.years[0]
    truth = country.tile_truth(year)
    cov = country.tile_covariates()
    rng = np.random.default_rng([seed, 8])
    tiles = truth[["tile_id", "nightlight"]].copy()
    tiles["district_id"] = cov["district_id"].to_numpy()
    dev = truth["development"].to_numpy()
    tiles["score"] = np.clip(dev + rng.normal(0, noise, len(dev)), 0, 1)
    emb = indicators.pca_reduce(image_embedding(country.tile_images(year)), 3)
    for j in range(emb.shape[1]):
        tiles[f"e{j}"] = emb[:, j]
    districts = pd.DataFrame(country.districts(year).drop(columns="geometry"))
    districts["indicator"] = district_indicator(
        districts["population"].to_numpy(), districts["area_km2"].to_numpy(), SPEC.seed
    )
    return tiles, districts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=100)
    ap.add_argument("--noise", type=float, default=0.08)
    args = ap.parse_args()
    t0 = time.perf_counter()
    tiles, districts = synthetic_case(args.noise)
    t_data = time.perf_counter() - t0
    sizes = tiles.groupby("district_id").size()
    y = indicators.labelled_targets(districts, "indicator", args.splits, 0.2, "synthetic")
    nl = tiles.groupby("district_id")["nightlight"].sum()
    out = {}
    for name, emb in (("scores + embeddings", ["e0", "e1", "e2"]), ("scores only", [])):
        data = indicators.DistrictTiles.from_frame(tiles, districts["district_id"], "score", emb)
        t1 = time.perf_counter()
        ev = indicators.evaluate(data, y, n_splits=args.splits, seed=0, nightlight=nl)
        out[name] = (ev.summary(), time.perf_counter() - t1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"country: {SPEC.nx}x{SPEC.ny} tiles, {len(districts)} districts, tiles per district "
        f"{sizes.min()}..{sizes.max()} (median {int(sizes.median())}); indicator "
        f"{y.min():,.0f}..{y.max():,.0f}; data {t_data:.1f} s"
    )
    for name, (summary, secs) in out.items():
        print(f"\nfeatures: {name}; {args.splits} splits in {secs:.1f} s")
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
