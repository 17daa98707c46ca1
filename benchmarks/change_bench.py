"""Change benchmark: does a tile's score change follow its true change, where the truth is known?

Two synthetic countries, each year pair (consecutive, and first -> last):

- ``SYN``: the embedded country as `make demo` renders it;
- ``SYN-variant``: :class:`ChangeVariant` (3x SYN's growth, 30 % of inhabited places frozen at
  their first year, 5 % declining, real-sample-like year nuisance: per-band gain, haze, cloud
  shadows) -- the same geography, so SYN's trained models score it as new years.

For each, the models of a finished SYN run (``--models``: its ``models/`` folder) score every
year: the scorer with and without relative radiometric normalisation (the ablation), the
colour / texture feature ranker, the scorer's scores in people (``siscore_census``: the link
`census_link` fits on the country's district census of its first year), nightlight (the truth
table's), and ``level_only`` (the first year's score as the "change": how much a delta gets
just by being proportional to the level).
Figures (`core.analysis.change`): rho over tiles whose floor area changed, sign accuracy in the
top decile of true change, share of still tiles flagged as changed, levels (Spearman of the
last year's score vs floor area over all tiles).  With ``--warehouse``, the run's own
`validation_change` rows are printed as well.  Run:
`python -m benchmarks.change_bench --models data/SYN/models [--warehouse data/warehouse.duckdb]`.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from siscore_assets.core.analysis import change
from siscore_assets.core.analysis.census_link import fit_from_grid
from siscore_assets.core.imagery import patches, radiometry
from siscore_assets.core.imagery.synthetic import ChangeVariant, SyntheticCountry, SyntheticSpec
from siscore_assets.core.models import colour_stats, habitation, scorer

FIGURES = (
    "rho_changed",
    "rho_given_level",
    "rho_changed_log",
    "rho_log_ceiling",
    "sign_top",
    "false_change",
    "flagged_changed",
    "level_rho",
)


def years_as_scored(
    country: SyntheticCountry, normalise: str
) -> tuple[np.ndarray, dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(tile ids, usable mask per year, every tile's image per year) with each year brought to
    the country's radiometry (``relative``, fitted on the usable tiles) or as read (``none``)."""
    ids = np.array([t.tile_id for t in country.tiles])
    years = {y: country.tile_images(y) for y in country.spec.years}
    ok = {
        y: np.array([patches.tile_status(t)[0] == patches.STATUS_OK for t in imgs])
        for y, imgs in years.items()
    }
    if normalise == "relative":
        means = {
            y: pd.DataFrame(radiometry.band_means(imgs[ok[y]]), index=ids[ok[y]])
            for y, imgs in years.items()
        }
        fits = radiometry.canonical_transforms(means)
        years = {y: fits[y].apply(imgs) for y, imgs in years.items()}
    return ids, ok, years


def score_years(country: SyntheticCountry, models: Path, normalise: str) -> dict[str, pd.DataFrame]:
    """Tiles x years frames of every model's score of ``country``'s years, as the pipeline
    scores them: blank / cloudy tiles left out (NaN), the radiometric fit on the usable tiles,
    places the uninhabited filter drops in every year at 0."""
    net = scorer.load_scorer(models / "scorer.pt", device="cpu")
    hab = habitation.load_habitation(models / "habitation.pt", device="cpu")
    ranker = colour_stats.load_feature_ranker(models / "feature_ranker.json")
    ids, ok, years = years_as_scored(country, normalise)
    usable = {y: ids[ok[y]] for y in years}
    raw: dict[str, dict[int, pd.Series]] = {"siscore": {}, "feature_ranker": {}, "inhabited": {}}
    ever = pd.Series(False, index=ids)
    for y, all_tiles in years.items():
        imgs = all_tiles[ok[y]]
        inhabited = habitation.predict_habitation(hab, imgs)[:, 2] < habitation.UNINHABITED_AT
        ever[usable[y][inhabited]] = True
        raw["inhabited"][y] = pd.Series(inhabited, usable[y])
        raw["siscore"][y] = pd.Series(scorer.score_images(net, imgs), usable[y])
        raw["feature_ranker"][y] = pd.Series(ranker.score(imgs), usable[y])
    out = {k: pd.DataFrame(v).reindex(ids) for k, v in raw.items()}
    place = np.repeat(ever.to_numpy()[:, None], out["siscore"].shape[1], axis=1)
    out["siscore"] = out["siscore"].where(place | out["siscore"].isna(), 0.0)
    return out


def in_people(country: SyntheticCountry, score: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """``score`` (tiles x years) in people, as `census_link` and `siscore_change` make it: the
    link fitted on the country's district census of its first year, people only where the
    year's habitation verdict is inhabited; NaN where the tile was not scored."""
    held = held.reindex_like(score).fillna(False).astype(bool)
    first = score.columns[0]
    tiles = pd.DataFrame(
        [{"tile_id": t.tile_id, "z": t.z, "x": t.x, "y": t.y} for t in country.tiles]
    ).set_index("tile_id")
    grid = tiles.reindex(score.index).assign(score=score[first], inhabited=held[first])
    link, _ = fit_from_grid(grid[grid["score"].notna()], country.districts(), first)
    print(
        f"#   census link: beta {link.beta:.2f} on {link.districts} districts, log RMSE "
        f"{link.log_rmse:.3f} (linear {link.log_rmse_linear:.3f})"
    )
    people = link.people(score.to_numpy(dtype=float), held.to_numpy())
    return pd.DataFrame(people, score.index, score.columns).where(score.notna())


def truth_frames(country: SyntheticCountry) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(floor area, inhabited, nightlight) as tiles x years."""
    t = {y: country.tile_truth(y).set_index("tile_id") for y in country.spec.years}
    frame = {c: pd.DataFrame({y: v[c] for y, v in t.items()}) for c in t[country.spec.years[0]]}
    return frame["building_floor_area_m2"], frame["inhabited"], frame["nightlight"]


def evaluate(name: str, country: SyntheticCountry, models: Path) -> pd.DataFrame:
    """The benchmark's rows for one country: model x pair x figure."""
    floor, inhabited, nightlight = truth_frames(country)
    runs = {}
    for norm in ("none", "relative"):
        t0 = time.perf_counter()
        scores = score_years(country, models, norm)
        runs[f"siscore ({norm})"] = scores["siscore"]
        runs[f"feature_ranker ({norm})"] = scores["feature_ranker"]
        runs[f"siscore_census ({norm})"] = in_people(
            country, scores["siscore"], scores["inhabited"]
        )
        print(f"# {name}: scored with normalisation {norm} in {time.perf_counter() - t0:.0f} s")
    runs["nightlight"] = nightlight
    first = runs["siscore (relative)"].columns[0]
    level = runs["siscore (relative)"]
    # a "change" proportional to the first year's level (x the years apart)
    runs["level_only"] = pd.DataFrame({y: level[first] * (y - first) for y in level.columns})
    census = {f"siscore_census ({n})": f"siscore ({n})" for n in ("none", "relative")}
    table = change.validation_change(
        name, runs, floor, inhabited, "building_floor_area_m2", flags_of=census
    )
    last = floor.columns[-1]
    for model, wide in runs.items():
        if model == "level_only":
            continue
        both = pd.concat([wide[last], floor[last].reindex(wide.index)], axis=1).dropna()
        rho = spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic
        table.loc[len(table)] = [
            name,
            model,
            first,
            last,
            "building_floor_area_m2",
            "level_rho",
            rho,
        ]
    return table


def real_summary(warehouse: Path, country: str) -> pd.DataFrame:
    """:func:`change.change_summary` of a run's `siscore_grid` (tiles inhabited in either year)."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        grid = con.execute(
            "SELECT year, tile_id, score, inhabited FROM siscore_grid WHERE country = ?", [country]
        ).df()
    wide = grid.pivot(index="tile_id", columns="year", values="score")
    inhabited = grid.pivot(index="tile_id", columns="year", values="inhabited")
    return change.change_summary(wide, inhabited.astype("boolean").fillna(False).astype(bool))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", required=True, type=Path, help="a SYN run's models/ folder")
    ap.add_argument("--warehouse", type=Path, help="that run's warehouse.duckdb")
    ap.add_argument("--out", type=Path, help="write the rows as CSV here")
    ap.add_argument(
        "--real",
        nargs="*",
        default=[],
        metavar="LABEL=WAREHOUSE",
        help="countries without truth: year agreement, delta distribution, flagged shares",
    )
    ap.add_argument("--country", default="PRK", help="the country --real reads")
    args = ap.parse_args()
    if args.real:
        for item in args.real:
            label, path = item.split("=", 1)
            print(f"# {args.country} {label}: {path}")
            print(real_summary(Path(path), args.country).round(3).to_string(index=False))
        if not args.models.exists():
            return
    torch.set_num_threads(2)
    spec = SyntheticSpec()
    tables = [
        evaluate("SYN", SyntheticCountry(spec), args.models),
        evaluate("SYN-variant", ChangeVariant(spec), args.models),
    ]
    table = pd.concat(tables, ignore_index=True)
    if args.out:
        table.to_csv(args.out, index=False)
    table["pair"] = table["year_from"].astype(str) + "-" + table["year_to"].astype(str)
    shown = table[table["figure"].isin(FIGURES)].pivot_table(
        index=["country", "model", "pair"], columns="figure", values="value", sort=False
    )
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch threads 2")
    print(shown.round(3).to_string())
    if args.warehouse:
        import duckdb

        with duckdb.connect(str(args.warehouse), read_only=True) as con:
            rows = con.sql("SELECT * FROM validation_change").df()
        rows["pair"] = rows["year_from"].astype(str) + "-" + rows["year_to"].astype(str)
        print("# validation_change of the run")
        print(
            rows.pivot_table(index=["model", "pair"], columns="figure", values="value")
            .round(3)
            .to_string()
        )


if __name__ == "__main__":
    main()
