"""Does averaging a scorer over crops of each tile (five crops: the corners and the centre, at a
share of the tile's side, each scored at its eight dihedral views) make SYN's change follow the
truth better than the whole tile at its eight views?  A test-time augmentation measured on
the scorer of a finished SYN run, no training: SYN's four years scored as the pipeline scores
them (relative normalisation, blank / cloudy tiles left out, places the uninhabited filter
drops in every year at 0), then `validation_change`'s figures per year pair and the levels.
Not adopted (docs/change.md §4).

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.change_crops --models <run>/SYN/models

About 30 minutes on 2 cores (11 scoring passes of 8 views a year).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from benchmarks.change_bench import truth_frames, years_as_scored
from siscore_assets.core.analysis import change
from siscore_assets.core.imagery.synthetic import SyntheticCountry, SyntheticSpec
from siscore_assets.core.models import habitation, scorer

FIGURES = ["rho_changed", "rho_given_level", "sign_top", "false_change", "flagged_changed"]


def crops(images: np.ndarray, share: float) -> list[np.ndarray]:
    """The four corner crops and the centre crop, ``share`` of the side each."""
    px = images.shape[1]
    c = int(round(px * share))
    o = px - c
    return [
        images[:, a : a + c, b : b + c] for a, b in ((0, 0), (0, o), (o, 0), (o, o), (o // 2,) * 2)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, required=True, help="a SYN run's models/ folder")
    ap.add_argument("--shares", type=float, nargs="+", default=[0.875, 0.75])
    args = ap.parse_args()
    torch.set_num_threads(2)
    country = SyntheticCountry(SyntheticSpec())
    net = scorer.load_scorer(args.models / "scorer.pt", device="cpu")
    hab = habitation.load_habitation(args.models / "habitation.pt", device="cpu")
    ids, ok, years = years_as_scored(country, "relative")
    runs: dict[str, dict[int, pd.Series]] = {"views": {}}
    runs.update({f"views+crops {s}": {} for s in args.shares})
    ever = pd.Series(False, index=ids)
    t0 = time.time()
    for y, all_tiles in years.items():
        imgs, usable = all_tiles[ok[y]], ids[ok[y]]
        inhabited = habitation.predict_habitation(hab, imgs)[:, 2] < habitation.UNINHABITED_AT
        ever[usable[inhabited]] = True
        runs["views"][y] = pd.Series(scorer.score_images(net, imgs), usable)
        for share in args.shares:
            parts = [scorer.score_images(net, np.ascontiguousarray(c)) for c in crops(imgs, share)]
            runs[f"views+crops {share}"][y] = pd.Series(np.mean(parts, axis=0), usable)
        print(f"# {y}: {len(imgs)} tiles, {time.time() - t0:.0f} s", flush=True)
    floor, inhabited, _ = truth_frames(country)
    scores = {}
    for name, by_year in runs.items():
        wide = pd.DataFrame(by_year).reindex(ids)
        place = np.repeat(ever.to_numpy()[:, None], wide.shape[1], axis=1)
        scores[name] = wide.where(place | wide.isna(), 0.0)
    table = change.validation_change("SYN", scores, floor, inhabited, "floor")
    table = table[table["figure"].isin(FIGURES)]
    table["pair"] = table["year_from"].astype(str) + "-" + table["year_to"].astype(str)
    print(
        table.pivot_table(index=["figure", "model"], columns="pair", values="value", sort=False)
        .round(3)
        .to_string()
    )
    last = floor.columns[-1]
    for name, wide in scores.items():
        both = pd.concat([wide[last], floor[last]], axis=1).dropna()
        print(f"{name}: levels rho {spearmanr(both.iloc[:, 0], both.iloc[:, 1])[0]:.4f}")


if __name__ == "__main__":
    main()
