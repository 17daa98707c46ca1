"""Stage 2: annotators' partial order graphs (POGs) of clusters, their agreement, the ensemble."""


import json
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from siscore_assets.core import guided, sources
from siscore_assets.core import pog as pogs
from siscore_assets.core.countries import GENERATED, CountryConfig, ModelSettings
from siscore_assets.core.files import atomic_path
from siscore_assets.core.grid import Tile

from ..common import OWNERS, country_only, frame_md, not_configured
from ..partitions import Partitions
from ..resources import SiscoreSettings, Warehouse

GROUP = "stage2_ranking"
SIMULATED_MANIFEST = ".simulated.json"


def cluster_ids(warehouse: Warehouse, code: str) -> tuple[list[int], int]:
    """Inhabited cluster ids (what annotators rank) and the uninhabited cluster's id."""
    summary = warehouse.read("clusters", {"country": code}, order_by="cluster_id")
    if summary.empty:
        raise FileNotFoundError(f"no clusters for {code}: materialise 'clusters' first")
    bottom = int(summary.loc[summary["cluster_group"] == "uninhabited", "cluster_id"].max()) \
        if (summary["cluster_group"] == "uninhabited").any() else int(summary["cluster_id"].max()) + 1
    ids = [int(c) for c in summary["cluster_id"] if int(c) != bottom]
    return ids, bottom


def annotation_folder(settings: SiscoreSettings, code: str) -> Path:
    return settings.country(code).annotation_folder(settings.root)


GUIDED_PREFIX = "guided_"


def read_pogs(settings: SiscoreSettings, warehouse: Warehouse, code: str) -> tuple[dict[str, pogs.Pog], list[int], int]:
    """Every annotator's POG, validated against the country's clusters; errors name file:line:col.

    With ``models.guided_annotator`` set, that proxy's data-guided POG (table `guided_pogs`)
    joins as annotator ``guided_<proxy>``."""
    ids, bottom = cluster_ids(warehouse, code)
    folder = annotation_folder(settings, code)
    try:
        found = pogs.read_annotation_folder(folder, known_ids=ids)
    except pogs.PogError as exc:
        raise Failure(description=f"bad annotation file: {exc}", metadata={"problem": str(exc)}) from exc
    except (FileNotFoundError, ValueError) as exc:
        raise Failure(description=f"{code}: {exc}", metadata={"folder": str(folder)}) from exc
    proxy = settings.country(code).models.guided_annotator
    if proxy:
        table = warehouse.read("guided_pogs", {"country": code})
        row = table[table["proxy"] == proxy] if not table.empty else table
        if row.empty:
            raise Failure(description=f"{code}: models.guided_annotator is {proxy!r} but table "
                          "`guided_pogs` has no such proxy: materialise 'guided_pogs' (and list "
                          "the proxy in models.guided_proxies)")
        found[GUIDED_PREFIX + proxy] = pogs.parse_edges(str(row["pog_edges"].iloc[0]),
                                                        source=f"guided_pogs[{proxy}]", known_ids=ids)
    return found, ids, bottom


def proxy_values(settings: SiscoreSettings, warehouse: Warehouse, country: CountryConfig,
                 members: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, str]:
    """Per member tile (year, tile_id), each proxy's value, and where the values came from.

    A country whose `proxies` is a mapping ``name: raster path`` is sampled from those rasters
    (mean of the pixels in each tile); otherwise the `proxies` table (per year) is joined."""
    out = members[["year", "tile_id", "cluster_id"]].copy()
    if isinstance(country.proxies, dict):
        tiles = members.drop_duplicates("tile_id")
        objs = [Tile(int(z), int(x), int(y)) for z, x, y in tiles[["z", "x", "y"]].itertuples(index=False)]
        for name in names:
            if name in country.proxies:
                vals = guided.raster_tile_means(country.proxies[name], objs)
                out[name] = out["tile_id"].map(dict(zip(tiles["tile_id"], vals)))
        return out, "rasters"
    frames = [warehouse.read("proxies", {"country": country.code, "year": y}) for y in country.years]
    table = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(
        not f.empty for f in frames) else pd.DataFrame()
    if table.empty:
        raise FileNotFoundError(f"{country.code}: no `proxies` rows: materialise 'proxies' first")
    keep = [n for n in names if n in table.columns]
    return out.merge(table[["year", "tile_id", *keep]], on=["year", "tile_id"], how="left"), "proxies table"


def build(p: Partitions) -> list:
    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS,
        deps=["clusters", "proxies"],
        description="The country's annotation folder. A configured folder: the human POG files, "
        "checked to exist. `generated` (synthetic countries): simulated annotators (cluster means of the true development "
        "with noise and ties, one careless) written there as `<name>.pog`.",
    )
    def annotation_inputs(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        folder = annotation_folder(settings, country.code)
        if country.annotations != GENERATED or not country.is_synthetic:
            if not folder.is_dir():
                raise Failure(description=f"{country.code}: annotation folder not found: {folder}")
            files = sorted([*folder.glob("*.pog"), *folder.glob("pogs.txt")])
            return MaterializeResult(metadata={"folder": MetadataValue.path(str(folder)), "files": len(files)})
        members = pd.concat([
            warehouse.read("cluster_members", {"country": country.code}),
        ])
        truth = pd.concat([warehouse.read("proxies", {"country": country.code, "year": y}) for y in country.years])
        if members.empty or truth.empty:
            raise FileNotFoundError(f"{country.code}: need 'clusters' and 'proxies' before simulating annotators")
        ids, bottom = cluster_ids(warehouse, country.code)
        joined = members.merge(truth[["year", "tile_id", "true_development"]], on=["year", "tile_id"])
        means = joined[joined["cluster_id"] != bottom].groupby("cluster_id")["true_development"].mean()
        simulated = sources.synthetic_country(country).simulate_annotators(
            {int(k): float(v) for k, v in means.items()}, seed=country.models.seed)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / SIMULATED_MANIFEST
        if manifest.is_file():  # remove only what an earlier simulation wrote
            for name in json.loads(manifest.read_text()):
                (folder / f"{name}.pog").unlink(missing_ok=True)
        for name, line in simulated.items():
            with atomic_path(folder / f"{name}.pog") as tmp:
                tmp.write_text(line + "\n", encoding="utf-8")
        manifest.write_text(json.dumps(sorted(simulated)))
        table = pd.DataFrame({"annotator": list(simulated), "pog": list(simulated.values())})
        return MaterializeResult(metadata={
            "folder": MetadataValue.path(str(folder)), "annotators": len(simulated),
            "pogs": frame_md(table),
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=["clusters", "proxies"],
        kinds={"duckdb"},
        description="Data-guided POGs (the paper's NL-/land-cover-guided baselines): each proxy in "
        "`models.guided_proxies` averaged over every inhabited cluster's tiles (all years), clusters "
        "ranked by that mean, ties within `models.guided_tolerance` of the range. Table "
        "`guided_pogs` (country, proxy, pog_line, pog_edges, n_clusters, n_tiers, tolerance) and "
        "`guided_cluster_means` (country, proxy, cluster_id, mean_value, n_tiles, tier [1 = least "
        "developed], guided_score [0..1]) -- a baseline model scores a tile by its cluster's "
        "guided_score. `models.guided_annotator` adds one of them to the annotators.",
    )
    def guided_pogs(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        m = country.models
        if not country.has_layer("proxies"):
            return not_configured(country, "no proxies layer (proxies: none)")
        ids, bottom = cluster_ids(warehouse, country.code)
        members = warehouse.read("cluster_members", {"country": country.code})
        members = members[members["cluster_id"] != bottom]
        values, origin = proxy_values(settings, warehouse, country, members, list(m.guided_proxies))
        missing = [n for n in m.guided_proxies if n not in values.columns]
        names = [n for n in m.guided_proxies if n not in missing]
        # proxies listed on purpose must exist; the defaults are used where the country has them
        if missing and (m.guided_proxies != ModelSettings().guided_proxies or not names):
            raise Failure(description=f"{country.code}: models.guided_proxies names {missing}, not in the {origin} "
                          f"(has: {[c for c in values.columns if c not in ('year', 'tile_id', 'cluster_id')]})")
        pog_rows, mean_rows = [], []
        for name in names:
            means = guided.cluster_means(values["cluster_id"].to_numpy(), values[name].to_numpy(float))
            pog = guided.guided_pog({c: v for c, (v, _) in means.items()}, tolerance=m.guided_tolerance)
            scores = guided.guided_scores(pog, ids)
            tier_of = {c: t for t, cls in enumerate(pog.to_line().split(">")[::-1], start=1)
                       for c in map(int, cls.split("="))}
            pog_rows.append({"country": country.code, "proxy": name, "pog_line": pog.to_line(),
                             "pog_edges": pog.to_edges(), "n_clusters": len(pog.nodes),
                             "n_tiers": len(pog.equal), "tolerance": m.guided_tolerance})
            mean_rows += [{"country": country.code, "proxy": name, "cluster_id": c,
                           "mean_value": means[c][0] if c in means else np.nan,
                           "n_tiles": means[c][1] if c in means else 0,
                           "tier": tier_of.get(c), "guided_score": scores[c]} for c in ids]
        pog_frame = pd.DataFrame(pog_rows)
        warehouse.write("guided_pogs", pog_frame, {"country": country.code})
        warehouse.write("guided_cluster_means", pd.DataFrame(mean_rows), {"country": country.code})
        return MaterializeResult(metadata={
            "source": origin, "proxies": len(pog_rows), "tolerance": m.guided_tolerance,
            "default_proxies_missing": ", ".join(missing) or "none",
            "pogs": frame_md(pog_frame[["proxy", "n_clusters", "n_tiers", "pog_line"]]),
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=[annotation_inputs, guided_pogs, "clusters"],
        kinds={"duckdb"},
        description="Every annotator's POG parsed and validated (unknown ids, cycles, bad syntax are "
        "errors naming file:line:col). Tables `annotator_pogs` (one row per annotator, POG as an "
        "edge list) and `annotator_ranks` (tied clusters at their averaged rank).",
    )
    def annotator_pogs(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        found, ids, _ = read_pogs(settings, warehouse, country.code)
        rows, ranks = [], []
        for name, pg in found.items():
            vec = pg.rank_vector(ids)
            rows.append({"country": country.code, "annotator": name, "n_ranked": int(np.isfinite(vec).sum()),
                         "n_tiers": len(pg.equal), "pog_edges": pg.to_edges(),
                         "pog_line": pg.to_line() if pg.is_total() else None})
            ranks += [{"country": country.code, "annotator": name, "cluster_id": c, "rank": float(r)}
                      for c, r in zip(ids, vec)]
        warehouse.write("annotator_pogs", pd.DataFrame(rows), {"country": country.code})
        warehouse.write("annotator_ranks", pd.DataFrame(ranks), {"country": country.code})
        return MaterializeResult(metadata={
            "annotators": len(rows), "clusters": len(ids),
            "pogs": frame_md(pd.DataFrame(rows)[["annotator", "n_ranked", "pog_line"]]),
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=[annotator_pogs], kinds={"duckdb"},
        description="Agreement between annotators: Kendall tau-b over the clusters both ranked, tied "
        "clusters at their averaged rank (the paper's Table S1). Table `pog_agreement`.",
    )
    def pog_agreement(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        found, ids, _ = read_pogs(settings, warehouse, country.code)
        names = list(found)
        tau = pogs.kendall_tau_b_matrix(pogs.rank_matrix(list(found.values()), ids))
        long = pd.DataFrame([{"country": country.code, "annotator_a": a, "annotator_b": b,
                              "kendall_tau_b": float(tau[i, j])}
                             for i, a in enumerate(names) for j, b in enumerate(names)])
        warehouse.write("pog_agreement", long, {"country": country.code})
        square = pd.DataFrame(tau, index=names, columns=names).reset_index(names="annotator")
        off = tau[~np.eye(len(names), dtype=bool)]
        return MaterializeResult(metadata={
            "annotators": len(names),
            "mean_tau_b": float(np.nanmean(off)) if off.size else 1.0,
            "matrix": frame_md(square, "{:.2f}"),
        })

    @asset(
        partitions_def=p.country, group_name=GROUP, owners=OWNERS, deps=[annotator_pogs], kinds={"duckdb"},
        description="One robust POG from all annotators: iterative re-weighting (an annotator's weight "
        "falls as it moves from the consensus), then tiers from 1-D clustering of the consensus. "
        "Tables `ensemble_pog` and `annotator_weights`; POG files for the trainer.",
        check_specs=[AssetCheckSpec("valid_pog", asset="ensemble_pog",
                                    description="a total preorder over every inhabited cluster")],
    )
    def ensemble_pog(context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse) -> MaterializeResult:
        country = country_only(context, settings)
        found, ids, bottom = read_pogs(settings, warehouse, country.code)
        m = country.models
        try:
            result = pogs.ensemble(list(found.values()), ids, names=list(found),
                                   n_tiers=m.ensemble_tiers or None, prune=m.ensemble_prune)
        except ValueError as exc:  # e.g. ensemble_tiers above the distinct consensus values
            raise Failure(description=f"{country.code}: ensemble: {exc}") from exc
        tier_of = {c: t for t, tier in enumerate(result.tiers, start=1) for c in tier}
        frame = pd.DataFrame({"country": country.code, "cluster_id": ids,
                              "tier": pd.array([tier_of.get(c) for c in ids], dtype="Int64"),
                              "consensus": result.consensus, "disagreement": result.disagreement,
                              "pruned": [c in result.pruned for c in ids]})
        weights = pd.DataFrame({"country": country.code, "annotator": result.names, "weight": result.weights})
        out_dir = settings.country_dir(country.code) / "pog"
        with atomic_path(out_dir / "ensemble.pog") as tmp:
            tmp.write_text(result.pog.to_line() + "\n")
        with atomic_path(out_dir / "ensemble_edges.txt") as tmp:
            tmp.write_text(result.pog.with_bottom(bottom).to_edges() + "\n")
        warehouse.write("ensemble_pog", frame, {"country": country.code})
        warehouse.write("annotator_weights", weights, {"country": country.code})
        valid = result.pog.nodes == frozenset(ids) - set(result.pruned) and result.pog.is_total()
        return MaterializeResult(
            metadata={
                "pog": MetadataValue.text(result.pog.to_line()),
                "tiers": len(result.tiers), "iterations": result.iterations,
                "converged": bool(result.converged),
                "pruned": MetadataValue.text(", ".join(map(str, result.pruned)) or "none"),
                "weights": frame_md(weights[["annotator", "weight"]]),
                "file": MetadataValue.path(str(out_dir / "ensemble.pog")),
            },
            check_results=[AssetCheckResult(check_name="valid_pog", passed=bool(valid),
                                            severity=AssetCheckSeverity.ERROR,
                                            metadata={"clusters": len(ids), "tiers": len(result.tiers)})],
        )

    return [annotation_inputs, guided_pogs, annotator_pogs, pog_agreement, ensemble_pog]
