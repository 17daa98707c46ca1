"""Change ablation on SYN: retrain the scorer with one setting changed, and say *why* its changes
do or do not follow the truth.

Trains a scorer exactly as the `scorer` asset does, on a finished SYN run's data (its clusters,
ensembled POG, pools and tile-year sample), with ``--set KEY=VALUE`` overrides of the country's
model settings, then scores the embedded country's years and reports:

- the `validation_change` figures per year pair (rho over changed tiles, sign accuracy in the
  top decile of true change), with the country's radiometric normalisation, and the levels;
- a **decomposition** of the first -> last change: the same places re-rendered with one factor
  moved at a time (``SyntheticCountry.counterfactual_images``): ``buildings`` (last year's
  buildings in the first year's scene), ``scene`` (the first year's buildings in the last year's
  season, crop rotation, clouds and noise) and ``both``.  rho of the ``buildings`` delta against
  the floor-area delta is how well the scorer *can* see change; the sd of the ``scene`` delta is
  how much the year alone moves a place's score.

    python -m benchmarks.change_ablation --root data [--set year_consistency=1.0] [--variant]
    python -m benchmarks.change_ablation --root data --models data/SYN/models   # no training
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from scipy.stats import spearmanr

from benchmarks import change_bench
from siscore_assets.core import ranking
from siscore_assets.core.analysis import change
from siscore_assets.core.imagery.synthetic import ChangeVariant, SyntheticCountry, SyntheticSpec
from siscore_assets.core.model_settings import ModelSettings
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models import scorer_training
from siscore_assets.defs.common.data import cluster_ids, ensemble_tiers, training_set
from siscore_assets.defs.common.resources import SiscoreSettings, Warehouse


def parse_sets(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs, values read as JSON where they parse (numbers, lists, booleans)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def train(root: Path, overrides: dict, out: Path) -> Path:
    """Train SYN's scorer on the run at ``root`` with ``overrides``; returns the models folder
    (the run's habitation network and feature ranker beside the new scorer)."""
    settings = SiscoreSettings(data_root=str(root))
    warehouse = Warehouse(database=str(root / "warehouse.duckdb"))
    country = settings.country("SYN")
    m = ModelSettings(**{**country.models.model_dump(), **overrides})
    country = country.model_copy(update={"models": m})
    _, bottom = cluster_ids(warehouse, "SYN")
    pog = ranking.Pog.from_tiers(ensemble_tiers(warehouse, "SYN")).with_bottom(bottom)
    paths = pog.tier_paths(seed=m.seed)
    rank_of = ranking.tier_ranks(paths[0]) if pog.is_total() else {}
    data = training_set(settings, warehouse, country, with_years=m.year_consistency > 0)
    members, _ = scorer_training.train_scorers(data.inputs(paths, rank_of), m)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("habitation.pt", "feature_ranker.json"):
        shutil.copy(root / "SYN" / "models" / name, out / name)
    scorer_lib.save_scorer(scorer_lib.ensemble(members), out / "scorer.pt")
    return out


def change_figures(name: str, country: SyntheticCountry, models: Path, norm: str) -> pd.DataFrame:
    """rho_changed and sign_top per year pair, and the levels, of the scorer in ``models``."""
    floor, inhabited, _ = change_bench.truth_frames(country)
    scores = change_bench.score_years(country, models, norm)["siscore"]
    table = change.validation_change(
        name, {"siscore": scores}, floor, inhabited, "building_floor_area_m2"
    )
    table["pair"] = table["year_from"].astype(str) + "-" + table["year_to"].astype(str)
    wide = table[table["figure"].isin(["rho_changed", "sign_top", "false_change"])].pivot_table(
        index="pair", columns="figure", values="value", sort=False
    )
    wide["level_rho"] = [
        spearmanr(scores[int(p[-4:])], floor[int(p[-4:])], nan_policy="omit").statistic
        for p in wide.index
    ]
    return wide


def decomposition(country: SyntheticCountry, models: Path) -> pd.DataFrame:
    """The first -> last delta split into what buildings and what the year's scene do to it,
    over places whose floor area changed (no radiometric normalisation: the raw response)."""
    net = scorer_lib.load_scorer(models / "scorer.pt", device="cpu")
    first, last = country.spec.years[0], country.spec.years[-1]
    floor = {
        y: country.tile_truth(y).set_index("tile_id")["building_floor_area_m2"].to_numpy()
        for y in (first, last)
    }
    delta = floor[last] - floor[first]
    rows = (delta != 0) & ((floor[first] > 0) | (floor[last] > 0))
    base = scorer_lib.score_images(net, country.counterfactual_images(first, first))
    out = []
    for part, (built, scene) in {
        "buildings": (last, first),
        "scene": (first, last),
        "both": (last, last),
    }.items():
        d = scorer_lib.score_images(net, country.counterfactual_images(built, scene)) - base
        out.append(
            {
                "part": part,
                "rho_vs_truth": spearmanr(d[rows], delta[rows]).statistic,
                "mean": float(d[rows].mean()),
                "sd": float(d[rows].std()),
                "share_down": float((d[rows] < 0).mean()),
            }
        )
    return pd.DataFrame(out).set_index("part")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("data"), help="a finished SYN run's root")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--models", type=Path, help="evaluate this models folder (no training)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/change_ablation"))
    ap.add_argument("--variant", action="store_true", help="the harder SYN variant as well")
    args = ap.parse_args()
    torch.set_num_threads(2)
    overrides = parse_sets(args.sets)
    models = args.models
    if models is None:
        t0 = time.perf_counter()
        tag = "_".join(f"{k}-{v}" for k, v in overrides.items()) or "as_configured"
        models = train(args.root, overrides, args.out / tag.replace("/", "-") / "models")
        print(f"# trained with {overrides or 'the configured settings'} in "
              f"{time.perf_counter() - t0:.0f} s -> {models}")  # fmt: skip
    norm = SiscoreSettings(data_root=str(args.root)).country("SYN").models.radiometry
    spec = SyntheticSpec()
    countries = [("SYN", SyntheticCountry(spec))]
    if args.variant:
        countries.append(("SYN-variant", ChangeVariant(spec)))
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch threads 2")
    for name, country in countries:
        print(f"## {name}: change figures (radiometry {norm})")
        print(change_figures(name, country, models, norm).round(3).to_string())
        print(f"## {name}: decomposition of the first -> last delta")
        print(decomposition(country, models).round(3).to_string())


if __name__ == "__main__":
    main()
