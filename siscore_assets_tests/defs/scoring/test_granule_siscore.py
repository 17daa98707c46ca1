"""`granule_siscore` scores its patches after the year's common radiometry, as `siscore_grid`
scores its tiles: the same tiles get the same raw score from both tables (`radiometry:
relative`, a later year delivered brighter), and the asset reads every year's `patches`."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from dagster import AssetKey, DagsterInstance, StaticPartitionMapping, materialize
from PIL import Image

from siscore_assets.core.models import batch_inference, habitation, scorer
from siscore_assets.core.storage import warehouse
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

COUNTRIES = """
default: GRS
countries:
  GRS:
    name: granule scores after the common radiometry
    years: [2018, 2019]
    source: {kind: tile_folder, root: "{root}", tiles: tiles, block_zoom: 13}
    clusters: none
    pretrain: none
    annotations: none
    districts: none
    proxies: none
    covariates: none
    models: {seed: 0, radiometry: relative}
"""
PX = 16


def _country(tmp_path):
    """16 tiles a year; 2019 the same places delivered brighter (gain 1.15, offset 10)."""
    sample = tmp_path / "sample"
    rng = np.random.default_rng(0)
    for y in range(6259, 6263):
        for x in range(13990, 13994):
            base = rng.integers(20, 180, (PX, PX, 3)).astype(np.float64)
            for year, (gain, offset) in {2018: (1.0, 0.0), 2019: (1.15, 10.0)}.items():
                image = np.clip(np.rint(base * gain + offset), 0, 255).astype(np.uint8)
                (sample / "tiles" / str(year)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(sample / "tiles" / str(year) / f"{y}_{x}.png")
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{root}", str(sample)))
    return definitions_for(countries, tmp_path)


def _run(defs, instance, year: int, *names: str) -> None:
    assert materialize(
        list(defs.assets),
        selection=select(*names),
        partition_key=country_year_key("GRS", year),
        resources=defs.resources,
        instance=instance,
    ).success


def test_granule_scores_equal_the_grid_scores_of_the_same_tiles(tmp_path):
    defs, db = _country(tmp_path)
    instance = DagsterInstance.ephemeral()
    for year in (2018, 2019):
        _run(defs, instance, year, "granules", "patches")
    models = defs.resources["settings"].country_dir("GRS") / "models"
    models.mkdir(parents=True)
    scorer.save_scorer(
        scorer.ScorerModel(scorer.ScorerConfig(input_px=PX)).eval(), models / "scorer.pt"
    )
    net = habitation.HabitationModel(
        habitation.HabitationConfig(input_px=PX, widths=(8, 16, 32, 64))
    )
    habitation.save_habitation(net.eval(), models / "habitation.pt")
    _run(defs, instance, 2019, "habitation")
    _run(defs, instance, 2019, "siscore_grid")
    # The year's grid tiles, indexed as granule patches (one granule): the same store, rows.
    keys = {"country": "GRS", "year": 2019}
    tiles = warehouse.read(db, "patches", keys, order_by="image_row")
    tiles = tiles[tiles["image_row"] >= 0]
    index = pd.DataFrame(
        {
            "country": "GRS",
            "year": 2019,
            "tile_id": tiles["tile_id"],
            "granule_id": "g",
            "row": tiles["y"] - tiles["y"].min(),
            "col": tiles["x"] - tiles["x"].min(),
            "epsg": 3857,
            "image_row": tiles["image_row"],
            "stack_path": tiles["stack_path"],
        }
    )
    warehouse.write(db, "granule_patches", index, keys)
    _run(defs, instance, 2019, "granule_siscore")
    grid = warehouse.read(db, "siscore_grid", keys).set_index("tile_id")["raw_score"]
    patches = warehouse.read(db, "granule_siscore", keys).set_index("tile_id")["raw_score"]
    assert len(patches) == len(grid) == 16
    assert np.allclose(patches.sort_index(), grid.sort_index(), atol=1e-9)
    # ... and the transform mattered: the tiles as stored score otherwise
    path = str(tiles["stack_path"].iloc[0])
    as_stored = batch_inference.score_block(str(models / "scorer.pt"), path, 0, 16, None)
    by_row = pd.Series(as_stored, index=tiles["tile_id"].to_numpy())
    assert not np.allclose(by_row.sort_index(), grid.sort_index(), atol=1e-6)


def test_granule_siscore_reads_every_years_patches(tmp_path):
    defs, _ = _country(tmp_path)
    asset = defs.get_assets_def("granule_siscore")
    mapping = asset.get_partition_mapping(AssetKey("patches"))
    assert isinstance(mapping, StaticPartitionMapping)
    wanted = {"GRS|2018", "GRS|2019"}
    assert {
        up
        for up, down in mapping.downstream_partition_keys_by_upstream_partition_key.items()
        if "GRS|2019" in down
    } == wanted
