"""Measure ``models: start_from``: a country's learned models re-made from another trained
country's networks, then its internal validation, on a COPY of a finished run.

    python -m benchmarks.start_from --countries C.yaml --root /tmp/x/data --country PRKS

``--root`` is a private data root holding the target's finished run (its warehouse, tiles,
clusters, POG) and the source country's ``models/`` folder; nothing else is read or written.
It re-materialises, for the country only, `habitation_model` and `scorer` (the country's
partition), `siscore_grid` (each year) and `validation_internal`, then prints the
`validation_internal` rows of the seed ensemble (``siscore``) as JSON.  Upstream of those
(tiles, the yearly `habitation` table, clusters, POG) is what the copied run made: with
``stage1_features: stats`` the filter and the clusters do not read the Stage-1 network, so they
are what a full run would make.
"""

from __future__ import annotations

import argparse
import json
import time

from dagster import DagsterInstance, materialize

from siscore_assets.core.countries import load_countries
from siscore_assets.core.countries_check import check_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.common.resources import Warehouse


def run(countries: str, root: str, code: str, validate_only: bool = False) -> dict:
    registry = load_countries(countries)
    check_countries(registry, [code])
    warehouse = f"{root}/warehouse.duckdb"
    defs = build_definitions(registry, data_root=root, countries_file=countries,
                             warehouse_path=warehouse)  # fmt: skip
    assets, resources = list(defs.assets or []), dict(defs.resources or {})
    instance = DagsterInstance.ephemeral()
    steps = [(["habitation_model", "scorer"], [code])]
    steps.append((["siscore_grid"], [country_year_key(code, y) for y in registry.get(code).years]))
    steps = [] if validate_only else steps  # the baseline: the copied run's own models
    steps.append((["validation_internal"], [code]))
    seconds = {}
    for names, keys in steps:
        for key in keys:
            t0 = time.perf_counter()
            result = materialize(assets, selection=names, partition_key=key,
                                 resources=resources, instance=instance)  # fmt: skip
            seconds[f"{'+'.join(names)} {key}"] = round(time.perf_counter() - t0, 1)
            assert result.success
    rows = Warehouse(database=warehouse).read("validation_internal", {"country": code})
    pick = rows[rows["model"].isin(["siscore", "seeds"])]
    return {
        "country": code,
        "start_from": registry.get(code).models.start_from,
        "start_use": registry.get(code).models.start_use,
        "seconds": seconds,
        "figures": {f"{r.model}:{r.figure}": round(float(r.value), 4) for r in pick.itertuples()},
    }


def cluster_order(countries: str, root: str, code: str, scorers: list[str]) -> dict:
    """Each scorer file's cluster order on ``code``'s clusters (its test split when it has one,
    else the first 64 training images of each cluster), measured as the `scorer` asset does,
    bypassing the ``start_from`` checks: what a zero-shot transfer the platform refuses would
    give (a scorer reads tiles resized to its own input size)."""
    from siscore_assets.core import ranking
    from siscore_assets.core.models import evaluation
    from siscore_assets.core.models import scorer as scorer_lib
    from siscore_assets.defs.common.data import cluster_ids, ensemble_tiers, training_set
    from siscore_assets.defs.common.resources import SiscoreSettings

    settings = SiscoreSettings(data_root=root, countries_file=countries)
    warehouse = Warehouse(database=f"{root}/warehouse.duckdb")
    country = settings.country(code)
    _, bottom = cluster_ids(warehouse, code)
    pog = ranking.Pog.from_tiers(ensemble_tiers(warehouse, code)).with_bottom(bottom)
    rank_of = ranking.tier_ranks(pog.tier_paths(seed=country.models.seed)[0])
    data = training_set(settings, warehouse, country, with_years=False)
    check = data.test or {c: imgs[:64] for c, imgs in data.train.items()}
    out = {"country": code, "on": "test split" if data.test else "training images"}
    for path in scorers:
        _, rho = evaluation.scorer_cluster_fit(scorer_lib.load_scorer(path), check, rank_of)
        out[path] = round(float(rho), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--countries", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--country", required=True)
    ap.add_argument("--zero-shot", nargs="*", help="scorer files: their cluster order only")
    ap.add_argument("--validate-only", action="store_true", help="validation_internal only")
    args = ap.parse_args()
    if args.zero_shot:
        print(json.dumps(cluster_order(args.countries, args.root, args.country, args.zero_shot)))
        return
    print(json.dumps(run(args.countries, args.root, args.country, args.validate_only), indent=1))


if __name__ == "__main__":
    main()
