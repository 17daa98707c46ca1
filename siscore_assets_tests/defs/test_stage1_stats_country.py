"""Stage 1 from a country's own imagery (``stage1_features: stats``): the descriptor filter
trained from the labelling kit's merged tile labels, descriptor k-means over the tiles and the
extra unlabelled images, their cluster ids kept for the scorer's pools; a kit labels file naming
an unknown tile is one clear line and nothing is written."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from dagster import AssetKey

from siscore_assets.defs.common.data import EXTRA_MEMBERS
from siscore_assets_tests.defs.test_recipe_country import country_definitions, materialize_for
from siscore_assets_tests.defs.test_tile_folder_country import make_sample, save_image, tile_image

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("recipe_country")]

STATS_COUNTRY = """
default: STC
countries:
  STC:
    name: tiny country, Stage 1 from its own tiles
    years: [2016, 2017]
    source: {kind: tile_folder, root: "{root}", root_env: SISCORE_TEST_STC_UNSET, tiles: tiles}
    clusters: kmeans
    pretrain: "{root}/kit"
    annotations: "{root}/annotations"
    districts: none
    proxies: none
    covariates: none
    models: {recipe: smoke, seed: 0, habitation_holdout: 0.25, holdout_per_cluster: 1,
             val_per_cluster: 1, k_range_urban: [2, 2], k_range_rural: [2, 2],
             stage1_features: stats, stage1_extra_images: ["{root}/clusters"]}
"""


def _sample(tmp_path):
    sample = tmp_path / "sample"
    make_sample(sample)
    rng = np.random.default_rng(0)
    rows = ["tile_id,year,urban,rural,uninhabited,n_annotators"]
    for year in (2016, 2017):
        for k in range(24):
            y, x = 6300 + k // 6, 14000 + k % 6
            kind = k % 3
            img = tile_image([0.85, 0.35, 0.0][kind], int(rng.integers(1 << 30)))
            save_image(sample / "tiles" / str(year) / f"{y}_{x}.png", img)
            shares = (
                ["1", "0", "0"] if kind == 0 else ["0", "1", "0"] if kind == 1 else ["0", "0", "1"]
            )
            rows.append(f"14/{x}/{y},{year},{','.join(shares)},1")
    (sample / "kit").mkdir()
    (sample / "kit" / "labels.csv").write_text("\n".join(rows) + "\n")
    return sample


def test_stats_stage1_from_kit_labels_and_extra_images(tmp_path):
    sample = _sample(tmp_path)
    text = textwrap.dedent(STATS_COUNTRY).replace("{root}", str(sample), 1)
    defs, _, instance = country_definitions(tmp_path, text)
    materialize_for(defs, instance, "clusters", "STC", (2016, 2017))

    def meta(key):
        return instance.get_latest_materialization_event(
            AssetKey(key)
        ).asset_materialization.metadata

    assert meta("pretrain_set")["images"].value == 48
    hab = meta("habitation_model")
    assert hab["filter"].value == "stats" and hab["heldout_filter_images"].value == 12
    assert hab["heldout_filter_accuracy"].value >= 0.75
    assert hab["filter_image_px"].value == tile_image(0.5, 0).shape[0]
    clu = meta("clusters")
    assert clu["features"].value == "stats" and clu["extra_images"].value == 32
    members = np.load(tmp_path / "data" / "STC" / "clusters" / EXTRA_MEMBERS)
    assert len(members["paths"]) == 32 and members["cluster_id"].max() <= clu["clusters"].value


def test_the_filter_is_fitted_at_the_size_tiles_are_stored(tmp_path):
    """The descriptor filter is applied to the tiles as stored, and descriptors change with an
    image's size, so it is fitted on the labelled tiles at that size, not at the network's
    (found by review: a filter fitted at another size called almost no tile urban)."""
    sample = _sample(tmp_path)
    text = textwrap.dedent(STATS_COUNTRY).replace("{root}", str(sample), 1)
    text = text.replace("tiles: tiles}", "tiles: tiles, store_px: 16}")
    assert "store_px: 16" in text
    defs, _, instance = country_definitions(tmp_path, text)
    materialize_for(defs, instance, "habitation_model", "STC", (2016, 2017))
    pre = np.load(tmp_path / "data" / "STC" / "pretrain" / "pretrain.npz")
    assert pre["images"].shape[1] == 32  # the smoke network's input, upsampled from 16
    assert pre["filter_images"].shape == (48, 16, 16, 3)  # the filter's: as stored
    hab = instance.get_latest_materialization_event(
        AssetKey("habitation_model")
    ).asset_materialization.metadata
    assert hab["filter_image_px"].value == 16 and hab["heldout_filter_images"].value == 12


def test_kit_labels_naming_an_unknown_tile_fail_with_the_line(tmp_path):
    sample = _sample(tmp_path)
    with (sample / "kit" / "labels.csv").open("a") as fh:
        fh.write("14/1/1,2016,1,0,0,1\n")
    text = textwrap.dedent(STATS_COUNTRY).replace("{root}", str(sample), 1)
    defs, _, instance = country_definitions(tmp_path, text)
    with pytest.raises(Exception, match=r"labels.csv:50: 14/1/1 2016 is not a usable tile-year"):
        materialize_for(defs, instance, "pretrain_set", "STC", (2016, 2017))
    assert not (tmp_path / "data" / "STC" / "pretrain" / "pretrain.npz").exists()


def _kit_country(tmp_path):
    """STC with ``pretrain: kit``: its labels come as one annotator's kit export, dropped where
    `habitation_labels` looks (``data/STC/labels/``), not as a folder of its own."""
    sample = _sample(tmp_path)
    text = textwrap.dedent(STATS_COUNTRY).replace('pretrain: "{root}/kit"', "pretrain: kit")
    assert "pretrain: kit" in text
    return sample, text.replace("{root}", str(sample), 1)


def test_pretrain_kit_reads_the_merged_exports_without_a_copy(tmp_path):
    sample, text = _kit_country(tmp_path)
    names = ("urban", "rural", "uninhabited")
    rows = ["tile_id,year,label"]
    for line in (sample / "kit" / "labels.csv").read_text().splitlines()[1:]:
        tile, year, *shares, _ = line.split(",")
        rows.append(f"{tile},{year},{names[shares.index('1')]}")
    exports = tmp_path / "data" / "STC" / "labels"
    exports.mkdir(parents=True)
    (exports / "ann.labels.csv").write_text("\n".join(rows) + "\n")
    defs, _, instance = country_definitions(tmp_path, text)
    materialize_for(defs, instance, "pretrain_set", "STC", (2016, 2017))
    got = np.load(tmp_path / "data" / "STC" / "pretrain" / "pretrain.npz")
    assert got["images"].shape[0] == 48
    assert sorted(map(tuple, got["labels"].round(6))) == sorted(
        [(1.0, 0.0, 0.0)] * 16 + [(0.0, 1.0, 0.0)] * 16 + [(0.0, 0.0, 1.0)] * 16
    )


def test_pretrain_kit_without_exports_says_what_to_do_and_writes_nothing(tmp_path):
    _, text = _kit_country(tmp_path)
    defs, _, instance = country_definitions(tmp_path, text)
    with pytest.raises(Exception, match=r"'pretrain: kit' reads the labelling kit's merged labels"):
        materialize_for(defs, instance, "pretrain_set", "STC", (2016, 2017))
    assert not (tmp_path / "data" / "STC" / "pretrain" / "pretrain.npz").exists()
