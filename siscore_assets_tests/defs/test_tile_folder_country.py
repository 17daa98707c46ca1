"""A tiny tile-folder country (the NK sample's layout, built in tmp) runs the whole graph:
corrupt and blank tiles are reported and never scored, Stage 1 takes its clusters from the
folder, Stage 3 its training images, and the same seed gives identical scores."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from PIL import Image

from siscore_assets.core.countries import load_countries
from siscore_assets.core.storage.tile_store import TileStore
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.common.resources import SiscoreSettings
from siscore_assets.defs.orchestration.runner import materialize_country
from siscore_assets_tests.conftest import select

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tile_folder_country")]

PX = 32
N_CLUSTERS = 4  # 0-1 urban, 2-3 rural


def tile_image(level: float, seed: int) -> np.ndarray:
    """Bright 'built' pixels in proportion to level, on a green-brown background."""
    rng = np.random.default_rng(seed)
    img = np.empty((PX, PX, 3))
    img[...] = (70, 100, 60)
    img[rng.random((PX, PX)) < 0.05 + 0.8 * level] = (205, 200, 190)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def save_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def make_sample(root: Path) -> None:
    level = {0: 0.9, 1: 0.7, 2: 0.4, 3: 0.2}
    for c in range(N_CLUSTERS):
        for n in range(8):
            save_image(root / "clusters" / str(c) / f"{n}.png", tile_image(level[c], 100 * c + n))
    rows = ["image_id,urban,rural,uninhabited"]
    for i in range(24):
        kind = i % 3
        img = tile_image([0.8, 0.3, 0.0][kind], 1000 + i)
        save_image(root / "pretrain" / "images" / f"{i}.png", img)
        rows.append(f"{i},{[1, 0, 0][kind]},{[0, 1, 0][kind]},{[0, 0, 1][kind]}")
    (root / "pretrain" / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "annotations").mkdir()
    (root / "annotations" / "pogs.txt").write_text("0>1>2>3\n0=1>2>3\n0>1>3>2\n")
    (root / "annotations" / "annotators.txt").write_text("sat_1\nloc_1\neco_1\n")
    for year in (2016, 2017):
        for k, (y, x) in enumerate(
            [(6259, 13990), (6259, 13991), (6260, 13990), (6260, 13991), (6261, 13990)]
        ):
            save_image(
                root / "tiles" / str(year) / f"{y}_{x}.png",
                tile_image(0.15 * k + 0.02 * (year - 2016), 7 * k + year),
            )
    save_image(root / "tiles" / "2017" / "6261_13991.png", np.zeros((PX, PX, 3), np.uint8))  # blank
    (root / "tiles" / "2017" / "6262_13990.png").write_bytes(b"\x89PNG broken")  # corrupt


COUNTRIES = """
default: TFC
countries:
  TFC:
    name: tiny tile-folder country
    years: [2016, 2017]
    source: {kind: tile_folder, root: "{root}", root_env: SISCORE_TEST_TFC_UNSET, tiles: tiles,
             block_zoom: 13}  # zoom-13 parents: 3 blocks a year, so the split path runs
    clusters: "{root}/clusters"
    pretrain: "{root}/pretrain"
    annotations: "{root}/annotations"
    districts: none
    proxies: none
    covariates: none
    models: {seed: 0, habitation_input_px: 16, habitation_epochs: 2, habitation_holdout: 0.25,
             folder_urban_clusters: 2, input_px: 16, normalize: per_image, sampling: cluster,
             scorer_steps: 4, per_tier: 2, scorer_seeds: [0, 1], holdout_per_cluster: 2,
             val_per_cluster: 2, eval_every: 2}
"""


@pytest.fixture(scope="module")
def tfc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tfc")
    sample = root / "sample"
    make_sample(sample)
    countries = root / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES).replace("{root}", str(sample), 1))
    registry = load_countries(countries)
    db = root / "warehouse.duckdb"
    defs = build_definitions(
        registry,
        data_root=str(root / "data"),
        countries_file=str(countries),
        warehouse_path=str(db),
    )
    instance = DagsterInstance.ephemeral()
    materialize_country(defs, "TFC", [2016, 2017], instance=instance, log=lambda _: None)
    return defs, db, instance, root


def _q(db: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).df()


def test_bad_tiles_reported_never_scored(tfc):
    _, db, _, _ = tfc
    patches = _q(db, "SELECT year, granule_id, status, problem FROM patches WHERE year = 2017")
    status = dict(zip(patches["granule_id"], patches["status"]))
    assert status["6261_13991"] == "blank" and status["6262_13990"] == "corrupt"
    grid = _q(db, "SELECT year, tile_id, score FROM siscore_grid ORDER BY year, tile_id")
    assert grid.groupby("year").size().to_dict() == {2016: 5, 2017: 5}
    assert "14/13991/6261" not in set(grid["tile_id"]) and "14/13990/6262" not in set(
        grid["tile_id"]
    )
    assert grid["score"].between(0, 1).all()


def test_clusters_and_pogs_from_folder(tfc):
    _, db, _, _ = tfc
    clusters = _q(
        db, "SELECT cluster_id, cluster_group, n_folder_images FROM clusters ORDER BY cluster_id"
    )
    assert clusters["cluster_group"].tolist() == ["urban", "urban", "rural", "rural", "uninhabited"]
    assert clusters["n_folder_images"].tolist() == [8, 8, 8, 8, 0]
    pogs = _q(db, "SELECT annotator FROM annotator_pogs ORDER BY annotator")
    assert pogs["annotator"].tolist() == ["eco_1", "loc_1", "sat_1"]
    assert len(_q(db, "SELECT * FROM ensemble_pog")) == N_CLUSTERS


def test_outputs_skip_missing_layers_and_scorer_reports_heldout(tfc):
    _, _, instance, root = tfc
    ev = instance.get_latest_materialization_event(AssetKey("validation_grid"))
    meta = ev.asset_materialization.metadata
    assert meta["status"].value == "not configured" and "no proxies" in meta["note"].value
    meta = instance.get_latest_materialization_event(
        AssetKey("scorer")
    ).asset_materialization.metadata
    assert meta["cluster_order_on"].value.startswith("test split")
    assert meta["test_images"].value == 2 * N_CLUSTERS
    assert (root / "data" / "TFC" / "models" / "scorer_seed1.pt").is_file()
    assert instance.get_latest_materialization_event(AssetKey("siscore_change")) is not None


def test_same_seed_identical_scores(tfc):
    defs, db, instance, _ = tfc
    before = _q(db, "SELECT year, tile_id, score FROM siscore_grid ORDER BY year, tile_id")
    materialize(
        list(defs.assets),
        selection=select("scorer"),
        partition_key="TFC",
        resources=dict(defs.resources),
        instance=instance,
    )
    for year in (2016, 2017):
        materialize(
            list(defs.assets),
            selection=select("siscore_grid"),
            partition_key=country_year_key("TFC", year),
            resources=dict(defs.resources),
            instance=instance,
        )
    after = _q(db, "SELECT year, tile_id, score FROM siscore_grid ORDER BY year, tile_id")
    pd.testing.assert_frame_equal(before, after)


def _split_run(defs, db, instance, workers: int) -> tuple[dict, dict]:
    """Cut both years' stores afresh and run the split stages on ``workers``: (tables, images)."""
    import shutil

    for y in (2016, 2017):
        for path in _q(db, f"SELECT DISTINCT stack_path FROM patches WHERE year = {y}")[
            "stack_path"
        ]:
            shutil.rmtree(path, ignore_errors=True)  # cut again, not resumed
    old = defs.resources["settings"]
    settings = SiscoreSettings(
        data_root=old.data_root,
        countries_file=old.countries_file,
        device=old.device,
        workers=workers,
    )
    resources = {**defs.resources, "settings": settings}
    for year in (2016, 2017):
        for asset in ("patches", "habitation", "siscore_grid"):
            assert materialize(
                list(defs.assets),
                selection=select(asset),
                partition_key=country_year_key("TFC", year),
                resources=resources,
                instance=instance,
            ).success
    tables = {
        t: _q(db, f"SELECT * EXCLUDE (stack_path) FROM {t} ORDER BY year, tile_id, granule_id")
        if t == "patches"
        else _q(db, f"SELECT * FROM {t} ORDER BY year, tile_id")
        for t in ("patches", "habitation", "siscore_grid")
    }
    stores = {}
    for y in (2016, 2017):
        path = _q(db, f"SELECT DISTINCT stack_path FROM patches WHERE year = {y}")[
            "stack_path"
        ].tolist()
        assert len(path) == 1 and len(TileStore(path[0]).blocks) >= 2
        stores[y] = (path[0], np.asarray(TileStore(path[0])))
    return tables, stores


def test_one_and_two_workers_give_identical_rows(tfc):
    """The split stages (patches, habitation, siscore_grid) in this process and on 2 local Dask
    workers give the very same rows, and the same store, block for block."""
    defs, db, instance, _ = tfc
    one_tables, one_stores = _split_run(defs, db, instance, workers=1)
    two_tables, two_stores = _split_run(defs, db, instance, workers=2)
    for t, rows in one_tables.items():
        pd.testing.assert_frame_equal(rows, two_tables[t])
    for y, (path, images) in one_stores.items():
        assert two_stores[y][0] == path and np.array_equal(two_stores[y][1], images)
