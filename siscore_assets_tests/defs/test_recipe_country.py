"""The recipe path end to end on the tiny tile-folder country: ResNet-18 pretraining with the
mean teacher, the scorer started from it with the uninhabited images as its bottom cluster,
continuous siScores (no zeroing filter), and the `validation_internal` table."""

from __future__ import annotations

import textwrap

import duckdb
import numpy as np
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from siscore_assets.defs.common.partitions import (
    country_annotator_key,
    country_year_key,
    registered_annotators,
)
from siscore_assets.defs.orchestration.runner import ANNOTATOR, COUNTRY, plan_waves
from siscore_assets_tests.defs.test_tile_folder_country import (
    COUNTRIES,
    make_sample,
    save_image,
    tile_image,
)
from siscore_assets_tests.fixtures.definitions import definitions_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("recipe_country")]

RECIPE_MODELS = (
    "models: {seed: 0, recipe: smoke, habitation_holdout: 0.25, folder_urban_clusters: 2, "
    "holdout_per_cluster: 2}"
)


def materialize_for(defs, instance, target: str, code: str, years) -> None:
    """Materialise ``target`` and everything upstream, wave by wave, partition by partition."""
    assets = {k: a for a in defs.assets for k in a.keys}
    need, todo = set(), [AssetKey(target)]
    while todo:
        key = todo.pop()
        if key not in need:
            need.add(key)
            todo += [d.asset_key for spec in assets[key].specs for d in spec.deps]
            todo += list(assets[key].keys)
    for wave in plan_waves(defs):
        keys = [k for k in wave.keys if k in need]
        parts = (
            [code]
            if wave.kind == COUNTRY
            else [country_annotator_key(code, n) for n in registered_annotators(instance, code)]
            if wave.kind == ANNOTATOR
            else [country_year_key(code, y) for y in years]
        )
        for part in parts if keys else []:
            materialize(
                list(defs.assets),
                selection=keys,
                partition_key=part,
                resources=dict(defs.resources),
                instance=instance,
            )


def country_definitions(tmp_path, text: str):
    """The Definitions of a countries file ``text`` under ``tmp_path``, its warehouse and an
    ephemeral instance."""
    countries = tmp_path / "countries.yaml"
    countries.write_text(text)
    defs, db = definitions_for(countries, tmp_path)
    return defs, db, DagsterInstance.ephemeral()


def test_recipe_country_runs_and_validates(tmp_path):
    sample = tmp_path / "sample"
    make_sample(sample)
    for bad in (
        "6261_13991",
        "6262_13990",
    ):  # the bad-tile reporting is test_tile_folder_country's subject
        (sample / "tiles" / "2017" / f"{bad}.png").unlink()
    text = textwrap.dedent(COUNTRIES).replace("{root}", str(sample), 1)
    start = text.index("    models:")
    text = text[:start] + "    " + RECIPE_MODELS + "\n"
    defs, db, instance = country_definitions(tmp_path, text)
    # Only what validation_internal needs (maps, change tables and the rest have their own tests).
    materialize_for(defs, instance, "validation_internal", "TFC", (2016, 2017))
    with duckdb.connect(str(db), read_only=True) as conn:
        grid = conn.execute(
            "SELECT year, tile_id, score, raw_score, inhabited FROM siscore_grid"
        ).df()
        table = conn.execute("SELECT model, figure, value FROM validation_internal").df()
    assert len(grid) == 10 and grid["score"].between(0, 1).all()
    assert (
        grid["score"] == grid["raw_score"]
    ).all()  # the bottom cluster replaces the zeroing filter
    models = set(table["model"])
    assert {
        "seed0",
        "seed1",
        "seeds",
        "siscore",
        "raw_scorer",
        "zero_filter",
        "feature_ranker",
    } <= models
    figures = set(table.loc[table["model"] == "siscore", "figure"])
    assert {
        "label_spearman",
        "urban_rural_auc",
        "test_cluster_order",
        "year_rho_2016_2017",
        "tiles_changed",
    } <= figures
    assert "test_cluster_order_sd" in set(table.loc[table["model"] == "seeds", "figure"])
    meta = instance.get_latest_materialization_event(
        AssetKey("habitation_model")
    ).asset_materialization.metadata
    assert meta["arch"].value == "resnet18" and meta["unlabelled_images"].value > 0
    # the scorer's selection images are kept out of pretraining as well
    assert meta["selection_images"].value > 0
    labelled = instance.get_latest_materialization_event(
        AssetKey("pretrain_set")
    ).asset_materialization.metadata
    assert (
        meta["train_images"].value + meta["selection_images"].value + meta["heldout_images"].value
        == labelled["images"].value
    )
    meta = instance.get_latest_materialization_event(
        AssetKey("scorer")
    ).asset_materialization.metadata
    assert meta["cluster_order_on"].value.startswith("test split")
    chosen = meta[
        "selection_figures"
    ].value  # the kept checkpoint of each seed, on the selection splits
    assert len(chosen["val_selection"]) == 2 and all(
        v is not None for v in chosen["val_cluster_order"]
    )


KMEANS_COUNTRY = """
default: KMC
countries:
  KMC:
    name: tiny tile-folder country clustered by k-means
    years: [2016, 2017]
    source: {kind: tile_folder, root: "{root}", root_env: SISCORE_TEST_KMC_UNSET, tiles: tiles}
    clusters: kmeans
    pretrain: "{root}/pretrain"
    annotations: "{root}/annotations"
    districts: none
    proxies: none
    covariates: none
    models: {recipe: cpu, seed: 0, pretrain_px: 16, pretrain_epochs: 1, pretrain_batch: 8,
             unlabelled_batch: 4, input_px: 16, texture_px: 32, stat_prefit: 20, steps: 4,
             per_tier: 2, eval_every: 2, consistency_batch: 4, label_batch: 6, seeds: [0],
             habitation_holdout: 0.25, holdout_per_cluster: 1, val_per_cluster: 1,
             k_range_urban: [2, 2], k_range_rural: [2, 2]}
"""


def test_kmeans_country_trains_with_the_cpu_recipe(tmp_path):
    """No cluster folder: the cpu recipe trains on the clusters k-means made of the country's
    own tiles (`cluster_members`), and its internal validation runs."""
    sample = tmp_path / "sample"
    make_sample(sample)
    rng = np.random.default_rng(0)
    for year in (2016, 2017):  # a 6 x 6 block of tiles: enough for two clusters per group
        for k in range(36):
            y, x = 6300 + k // 6, 14000 + k % 6
            level = [0.85, 0.6, 0.35, 0.15, 0.0][k % 5]
            img = tile_image(min(1.0, level + 0.02 * (year - 2016)), int(rng.integers(1 << 30)))
            save_image(sample / "tiles" / str(year) / f"{y}_{x}.png", img)
    annotations = sample / "annotations"
    (annotations / "pogs.txt").write_text("0>1>2>3\n0>1>3>2\n1>0>2>3\n")
    text = textwrap.dedent(KMEANS_COUNTRY).replace("{root}", str(sample), 1)
    defs, db, instance = country_definitions(tmp_path, text)
    materialize_for(defs, instance, "validation_internal", "KMC", (2016, 2017))
    meta = instance.get_latest_materialization_event(
        AssetKey("scorer")
    ).asset_materialization.metadata
    assert meta["image_source"].value == "cluster_members"
    assert meta["recipe"].value == "cpu"
    assert meta["training_images"].value > 0 and meta["test_images"].value > 0
    with duckdb.connect(str(db), read_only=True) as conn:
        grid = conn.execute("SELECT score FROM siscore_grid").df()
        table = conn.execute("SELECT model, figure FROM validation_internal").df()
    assert len(grid) > 0 and grid["score"].between(0, 1).all()
    assert {"siscore", "feature_ranker"} <= set(table["model"])
