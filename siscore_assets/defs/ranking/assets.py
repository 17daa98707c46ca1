"""Ranking (Stage 2): annotators' partial order graphs (POGs) of clusters, data-guided POGs,
agreement and the ensembled POG the scorer trains on."""

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from siscore_assets.core import ranking
from siscore_assets.core.countries import GENERATED, CountryConfig, CountryRegistry, ModelSettings
from siscore_assets.core.imagery import sources
from siscore_assets.core.ranking import annotators, ensemble_tables, guided
from siscore_assets.core.storage.files import atomic_path
from siscore_assets.core.storage.paths import is_safe_name

from ..common.context import (
    OWNERS,
    STALE_MODEL,
    country_only,
    imagery_not_configured,
    imagery_skipped,
    learned_version,
    not_configured,
)
from ..common.data import all_years, cluster_ids, required
from ..common.metadata import frame_md
from ..common.partitions import (
    Partitions,
    country_annotator_key,
    registered_annotators,
    split_country_annotator,
    sync_annotators,
)
from ..common.resources import SiscoreSettings, Warehouse

GROUP = "ranking"
#: Read by the scorer: blocking, checked before the rows are written.
VALID_POG = AssetCheckSpec(
    "valid_pog",
    asset="ensemble_pog",
    blocking=True,
    description="a total preorder over every inhabited cluster not pruned",
)


def expected_annotators(root, country: CountryConfig) -> list[str]:
    """The country's annotators, without parsing a POG: every one its annotation folder names;
    for simulated annotators (`generated`) their names, known before the files are written; and
    the data-guided annotator when configured (its POG comes from `guided_pogs`, not a file).
    A clash of names (:class:`ranking.PogError`) or a name that cannot name a file
    (``ValueError``) is an error naming the folder."""
    folder = country.annotation_folder(root)
    names = list(ranking.annotator_files(folder))
    if country.annotations == GENERATED and country.is_synthetic:
        names += [
            n
            for n in sources.synthetic_country(country).annotator_names(country.models.seed)
            if n not in names
        ]
    for name in names:
        if not is_safe_name(name):
            raise ValueError(
                f"{country.code}: annotator name {name!r} in {folder} cannot name a "
                "partition file: use letters, digits, '_', '-' and '.'"
            )
    proxy = country.models.guided_annotator
    return sorted(names) + ([annotators.GUIDED_PREFIX + proxy] if proxy and names else [])


def annotator_names(settings: SiscoreSettings, country: CountryConfig) -> list[str]:
    """:func:`expected_annotators`, as an asset's error (at least one POG is required)."""
    folder = country.annotation_folder(settings.root)
    try:
        names = expected_annotators(settings.root, country)
    except ranking.PogError as exc:
        raise Failure(
            description=f"bad annotation folder: {exc}", metadata={"problem": str(exc)}
        ) from exc
    except ValueError as exc:
        raise Failure(description=str(exc)) from exc
    if not names:
        raise Failure(
            description=f"{country.code}: {folder}: no POGs found (expected pogs.txt or *.pog "
            "files)"
        )
    return names


def _annotator_pog(
    settings: SiscoreSettings,
    warehouse: Warehouse,
    country: CountryConfig,
    name: str,
    ids: list[int],
) -> ranking.Pog:
    """One annotator's POG, validated against the clusters: from its file (errors name
    file:line:col), or for the data-guided annotator from `guided_pogs`."""
    proxy = country.models.guided_annotator
    if proxy and name == annotators.GUIDED_PREFIX + proxy:
        table = warehouse.read("guided_pogs", {"country": country.code})
        row = table[table["proxy"] == proxy] if not table.empty else table
        if row.empty:
            raise Failure(
                description=f"{country.code}: models.guided_annotator is {proxy!r} but table "
                "`guided_pogs` has no such proxy: materialise 'guided_pogs' (and list "
                "the proxy in models.guided_proxies)"
            )
        return ranking.parse_edges(
            str(row["pog_edges"].iloc[0]), source=f"guided_pogs[{proxy}]", known_ids=ids
        )
    folder = country.annotation_folder(settings.root)
    try:
        return ranking.read_annotator(folder, name, known_ids=ids)
    except ranking.PogError as exc:
        raise Failure(
            description=f"bad annotation file: {exc}", metadata={"problem": str(exc)}
        ) from exc
    except (FileNotFoundError, ValueError) as exc:
        raise Failure(
            description=f"{country.code}: {exc}", metadata={"folder": str(folder)}
        ) from exc


def write_pog_files(out_dir: Path, tables: ensemble_tables.EnsembleTables) -> Path:
    """The ensembled POG for the trainer: ``ensemble.pog`` (one line) and ``ensemble_edges.txt``
    (with the bottom cluster); returns the first."""
    with atomic_path(out_dir / "ensemble.pog") as tmp:
        tmp.write_text(tables.line + "\n")
    with atomic_path(out_dir / "ensemble_edges.txt") as tmp:
        tmp.write_text(tables.edges + "\n")
    return out_dir / "ensemble.pog"


def _stored_pogs(
    context: AssetExecutionContext, warehouse: Warehouse, code: str
) -> tuple[dict[str, ranking.Pog], list[int], int]:
    """The country's annotators' POGs as their partitions of `annotator_pogs` stored them.  Only
    the annotators registered now count; one registered but never stored (its run failed or has
    not run) is an error, so the ensemble never quietly leaves a person out."""
    ids, bottom = cluster_ids(warehouse, code)
    names = registered_annotators(context.instance, code)
    if not names:
        raise Failure(
            description=f"{code}: no annotator partitions: materialise 'annotation_inputs' "
            "(it registers one `country|annotator` partition per POG) and then 'annotator_pogs'"
        )
    table = required(warehouse, "annotator_pogs", {"country": code})
    stored = {str(r.annotator): r for r in table.itertuples(index=False)}
    missing = [n for n in names if n not in stored]
    if missing:
        keys = ", ".join(country_annotator_key(code, n) for n in missing)
        raise Failure(
            description=f"{code}: annotator_pogs has no POG for {keys}: materialise those "
            "partitions (or fix their files) first",
            metadata={"missing": keys},
        )
    found = {
        n: ranking.parse_edges(
            str(stored[n].pog_edges), source=f"annotator_pogs[{n}]", known_ids=ids
        )
        for n in names
    }
    return found, ids, bottom


def _guided_values(
    warehouse: Warehouse, country: CountryConfig, members: pd.DataFrame
) -> tuple[list[str], pd.DataFrame]:
    """The proxies a guided POG is made for (``models.guided_proxies``, and the survey when the
    country has one) and their values per member tile-year: raster proxies as the `proxies`
    asset sampled them onto every tile, year by year; the survey's from `survey_tiles`."""
    wanted = list(country.models.guided_proxies)
    if country.has_layer("proxies"):
        values = guided.proxy_values(
            members, wanted, table=all_years(warehouse, "proxies", country)
        )
    else:
        values = members[["year", "tile_id", "cluster_id"]].copy()
    if country.surveys is not None:
        name = country.surveys.name
        wanted += [name] if name not in wanted else []
        survey = required(warehouse, "survey_tiles", {"country": country.code})
        values = guided.with_survey(values, survey, name)
    return wanted, values


def build(p: Partitions, registry: CountryRegistry) -> list:
    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=["clusters", "cluster_members", p.from_years("proxies")],
        description="The country's annotation folder. A configured folder: the human POG files, "
        "checked to exist. `generated` (synthetic countries): simulated annotators (cluster means "
        "of the true development with noise and ties, one careless) written there as `<name>.pog`.",
    )
    def annotation_inputs(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        if done := imagery_skipped(country):  # no clusters to rank: no annotator partitions
            return done
        folder = country.annotation_folder(settings.root)
        if country.annotations != GENERATED or not country.is_synthetic:
            if not folder.is_dir():
                raise Failure(description=f"{country.code}: annotation folder not found: {folder}")
            files = sorted(
                f
                for f in [*folder.glob("*.pog"), *folder.glob("pogs.txt")]
                if not f.name.startswith(".")  # a writer's hidden temporary file
            )
            metadata = {"folder": MetadataValue.path(str(folder)), "files": len(files)}
        else:
            members = required(
                warehouse, "cluster_members", {"country": country.code}, asset="clusters"
            )
            truth = all_years(warehouse, "proxies", country)
            _, bottom = cluster_ids(warehouse, country.code)
            simulated = sources.synthetic_country(country).simulate_annotators(
                annotators.true_cluster_means(members, truth, bottom), seed=country.models.seed
            )
            annotators.write_simulated(folder, simulated)
            table = pd.DataFrame({"annotator": list(simulated), "pog": list(simulated.values())})
            metadata = {
                "folder": MetadataValue.path(str(folder)),
                "annotators": len(simulated),
                "pogs": frame_md(table),
            }
        names = annotator_names(settings, country)
        added, removed = sync_annotators(context.instance, country.code, names)
        for key in removed:  # a retired annotator's rows go with its partition
            keys = {"country": country.code, "annotator": split_country_annotator(key)[1]}
            warehouse.clear("annotator_pogs", keys)
            warehouse.clear("annotator_ranks", keys)
        return MaterializeResult(
            metadata={
                **metadata,
                "annotator_partitions": MetadataValue.text(", ".join(names)),
                "partitions_added": len(added),
                "partitions_removed": len(removed),
            }
        )

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        specs=[
            AssetSpec(
                "guided_pogs",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=["clusters", "cluster_members", p.from_years("proxies"), "survey_tiles"],
                description="Data-guided POGs (the paper's NL-/land-cover-guided baselines): each "
                "proxy in `models.guided_proxies` (and the country's survey, `surveys.name`, "
                "from `survey_tiles`) averaged over every inhabited cluster's tiles "
                "(all years), clusters ranked by that mean, ties within `models.guided_tolerance` "
                "of the range. One row per proxy (pog_line, pog_edges, n_clusters, n_tiers, "
                "tolerance). `models.guided_annotator` adds one of them to the annotators.",
            ),
            AssetSpec(
                "guided_cluster_means",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=["clusters", "cluster_members", p.from_years("proxies"), "survey_tiles"],
                description="One row per proxy x cluster: mean_value, n_tiles, tier (1 = least "
                "developed) and guided_score in [0, 1]; a baseline model scores a tile by its "
                "cluster's guided_score.",
            ),
        ],
    )
    def guided_pogs(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country = country_only(context, settings)
        m = country.models
        keys = {"country": country.code}
        tables = {"guided_pogs": keys, "guided_cluster_means": keys}
        if done := imagery_not_configured(warehouse, country, tables):
            yield from done
            return
        if not country.has_layer("proxies") and country.surveys is None:
            note = "no proxies layer (proxies: none) and no survey"
            yield from not_configured(warehouse, country, note, tables)
            return
        ids, bottom = cluster_ids(warehouse, country.code)
        members = required(warehouse, "cluster_members", keys, asset="clusters")
        members = members[members["cluster_id"] != bottom]
        wanted, values = _guided_values(warehouse, country, members)
        origin = "proxies table" + (" and survey_tiles" if country.surveys is not None else "")
        missing = [n for n in wanted if n not in values.columns]
        names = [n for n in wanted if n not in missing]
        # proxies listed on purpose must exist; the defaults are used where the country has them
        if missing and (m.guided_proxies != ModelSettings().guided_proxies or not names):
            raise Failure(
                description=f"{country.code}: models.guided_proxies names {missing}, not in the "
                f"{origin} (has: "
                f"{[c for c in values.columns if c not in ('year', 'tile_id', 'cluster_id')]})"
            )
        pog_frame, means_frame = guided.guided_tables(
            country.code, values, names, ids, m.guided_tolerance
        )
        n_pogs = warehouse.write("guided_pogs", pog_frame, keys)
        n_means = warehouse.write("guided_cluster_means", means_frame, keys)
        yield MaterializeResult(
            asset_key="guided_pogs",
            metadata={
                "rows": n_pogs,
                "source": origin,
                "proxies": n_pogs,
                "tolerance": m.guided_tolerance,
                "default_proxies_missing": ", ".join(missing) or "none",
                "status": "ok",
                "pogs": frame_md(pog_frame[["proxy", "n_clusters", "n_tiers", "pog_line"]])
                if n_pogs
                else MetadataValue.text("none"),
            },
        )
        yield MaterializeResult(
            asset_key="guided_cluster_means", metadata={"rows": n_means, "status": "ok"}
        )

    after_inputs = [
        p.across_annotators(a) for a in (annotation_inputs.key, "guided_pogs", "clusters")
    ]

    @multi_asset(
        partitions_def=p.country_annotator,
        group_name=GROUP,
        can_subset=False,
        specs=[
            AssetSpec(
                "annotator_pogs",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=after_inputs,
                description="One partition per annotator (`country|annotator`, registered by "
                "annotation_inputs and the annotation sensor): that annotator's POG parsed and "
                "validated (unknown ids, cycles, bad syntax are errors naming file:line:col), "
                "one row, the POG as an edge list (and a line when it is total).",
            ),
            AssetSpec(
                "annotator_ranks",
                owners=OWNERS,
                kinds={"duckdb"},
                deps=after_inputs,
                description="One row per cluster of the annotator's partition: the rank (1 = least "
                "developed), tied clusters at their averaged rank.",
            ),
        ],
    )
    def annotator_pogs(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        code, name = split_country_annotator(context.partition_key)
        country = settings.country(code)
        keys = {"country": code, "annotator": name}
        ids, _ = cluster_ids(warehouse, code)
        pog = _annotator_pog(settings, warehouse, country, name, ids)
        pog_table, rank_table = annotators.annotator_tables({name: pog}, ids, code)
        n = warehouse.write("annotator_pogs", pog_table, keys)
        n_ranks = warehouse.write("annotator_ranks", rank_table, keys)
        yield MaterializeResult(
            asset_key="annotator_pogs",
            metadata={
                "rows": n,
                "status": "ok",
                "annotator": name,
                "clusters": len(ids),
                "ranked": int(pog_table["n_ranked"].iloc[0]),
                "tiers": int(pog_table["n_tiers"].iloc[0]),
                "pog": MetadataValue.text(pog.to_line() if pog.is_total() else pog.to_edges()),
            },
        )
        yield MaterializeResult(
            asset_key="annotator_ranks", metadata={"rows": n_ranks, "status": "ok"}
        )

    @asset(
        partitions_def=p.country,
        group_name=GROUP,
        owners=OWNERS,
        deps=[p.across_annotators("annotator_pogs"), "clusters"],
        kinds={"duckdb"},
        description="Agreement between annotators: Kendall tau-b over the clusters both ranked, "
        "tied clusters at their averaged rank (the paper's Table S1). Table `pog_agreement`.",
    )
    def pog_agreement(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ) -> MaterializeResult:
        country = country_only(context, settings)
        keys = {"country": country.code}
        if done := imagery_not_configured(warehouse, country, {"pog_agreement": keys}):
            return done[0]
        found, ids, _ = _stored_pogs(context, warehouse, country.code)
        names = list(found)
        tau = ranking.agreement_matrix(list(found.values()), ids)
        long = pd.DataFrame(
            [
                {
                    "country": country.code,
                    "annotator_a": a,
                    "annotator_b": b,
                    "kendall_tau_b": float(tau[i, j]),
                }
                for i, a in enumerate(names)
                for j, b in enumerate(names)
            ]
        )
        n = warehouse.write("pog_agreement", long, {"country": country.code})
        square = pd.DataFrame(tau, index=names, columns=names).reset_index(names="annotator")
        off = tau[~np.eye(len(names), dtype=bool)]
        return MaterializeResult(
            metadata={
                "rows": n,
                "annotators": len(names),
                "mean_tau_b": float(np.nanmean(off)) if off.size else 1.0,
                "matrix": frame_md(square, "{:.2f}"),
            }
        )

    @multi_asset(
        partitions_def=p.country,
        group_name=GROUP,
        can_subset=False,
        code_version=learned_version(
            registry, "siscore_assets.core.ranking.ensemble", "siscore_assets.core.ranking.tiers"
        ),
        check_specs=[VALID_POG],
        specs=[
            AssetSpec(
                "ensemble_pog",
                owners=OWNERS,
                kinds={"duckdb"},
                automation_condition=STALE_MODEL,
                deps=[p.across_annotators("annotator_pogs"), "clusters"],
                description="One robust POG from all annotators: iterative re-weighting (an "
                "annotator's weight falls as it moves from the consensus), then tiers from 1-D "
                "clustering of the consensus. One row per cluster (tier, consensus, disagreement, "
                "pruned); POG files for the trainer.",
            ),
            AssetSpec(
                "annotator_weights",
                owners=OWNERS,
                kinds={"duckdb"},
                automation_condition=STALE_MODEL,
                deps=[p.across_annotators("annotator_pogs"), "clusters"],
                description="The ensemble's weight of every annotator (sums to 1).",
            ),
        ],
    )
    def ensemble_pog(
        context: AssetExecutionContext, settings: SiscoreSettings, warehouse: Warehouse
    ):
        country = country_only(context, settings)
        keys = {"country": country.code}
        tables = {"ensemble_pog": keys, "annotator_weights": keys}
        if done := imagery_not_configured(warehouse, country, tables, ["valid_pog"]):
            return (yield from done)
        found, ids, bottom = _stored_pogs(context, warehouse, country.code)
        m = country.models
        try:
            result = ranking.ensemble(
                list(found.values()),
                ids,
                names=list(found),
                n_tiers=m.ensemble_tiers or None,
                prune=m.ensemble_prune,
            )
        except ValueError as exc:  # e.g. ensemble_tiers above the distinct consensus values
            raise Failure(description=f"{country.code}: ensemble: {exc}") from exc
        tables = ensemble_tables.ensemble_tables(result, ids, bottom, country.code)
        check = AssetCheckResult(
            check_name="valid_pog",
            asset_key="ensemble_pog",
            passed=tables.valid,
            severity=AssetCheckSeverity.ERROR,
            metadata={"clusters": len(ids), "tiers": len(result.tiers)},
        )
        if not tables.valid:  # nothing is written: the scorer would train on a broken order
            yield MaterializeResult(
                asset_key="ensemble_pog",
                metadata={"status": "rejected", "rows_written": 0},
                check_results=[check],
            )
            yield MaterializeResult(
                asset_key="annotator_weights", metadata={"status": "rejected", "rows_written": 0}
            )
            return
        pog_file = write_pog_files(settings.country_dir(country.code) / "pog", tables)
        n = warehouse.write("ensemble_pog", tables.clusters, keys)
        n_w = warehouse.write("annotator_weights", tables.weights, keys)
        yield MaterializeResult(
            asset_key="ensemble_pog",
            metadata={
                "rows": n,
                "status": "ok",
                "pog": MetadataValue.text(result.pog.to_line()),
                "tiers": len(result.tiers),
                "iterations": result.iterations,
                "converged": bool(result.converged),
                "pruned": MetadataValue.text(", ".join(map(str, result.pruned)) or "none"),
                "file": MetadataValue.path(str(pog_file)),
            },
            check_results=[check],
        )
        yield MaterializeResult(
            asset_key="annotator_weights",
            metadata={
                "rows": n_w,
                "status": "ok",
                "weights": frame_md(tables.weights[["annotator", "weight"]]),
            },
        )

    return [annotation_inputs, guided_pogs, annotator_pogs, pog_agreement, ensemble_pog]
