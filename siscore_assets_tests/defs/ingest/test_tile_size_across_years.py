"""Without ``source.store_px`` each tile-folder year is stored at its own tile size: a year
whose tiles are not the size of the country's other committed years' stores fails in `patches`
before anything is written, with one line naming both years and the setting (Stage 3 would
otherwise fail on the two stores together, naming neither)."""

from __future__ import annotations

import textwrap

import numpy as np
from dagster import DagsterInstance, materialize
from PIL import Image

from siscore_assets.core.storage import warehouse
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

COUNTRIES = """
default: TSZ
countries:
  TSZ:
    name: tile sizes across years
    years: [2018, 2019, 2020]
    source: {kind: tile_folder, root: "{root}", tiles: tiles, block_zoom: 13{store_px}}
    clusters: none
    pretrain: none
    annotations: none
    districts: none
    proxies: none
    covariates: none
"""
#: 2018 and 2020 at 16 px, 2019 re-exported at 32 px.
SIDES = {2018: 16, 2019: 32, 2020: 16}


def _country(tmp_path, store_px: str = ""):
    sample = tmp_path / "sample"
    rng = np.random.default_rng(0)
    for year, side in SIDES.items():
        folder = sample / "tiles" / str(year)
        folder.mkdir(parents=True)
        for y in range(6259, 6261):
            for x in range(13990, 13992):
                image = rng.integers(0, 200, (side, side, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{y}_{x}.png")
    countries = tmp_path / "countries.yaml"
    text = textwrap.dedent(COUNTRIES).replace("{root}", str(sample))
    countries.write_text(text.replace("{store_px}", store_px))
    return definitions_for(countries, tmp_path)


def _ingest(defs, year: int, instance: DagsterInstance):
    return materialize(
        list(defs.assets),
        selection=select("granules", "patches"),
        partition_key=country_year_key("TSZ", year),
        resources=defs.resources,
        instance=instance,
        raise_on_error=False,
    )


def _failure(result) -> str:
    """The failed steps' error messages, each with its causes'."""
    lines = []
    for event in result.all_events:
        error = event.event_specific_data.error if event.is_step_failure else None
        while error is not None:
            lines.append(str(error.message))
            error = error.cause
    return "\n".join(lines)


def test_a_year_of_another_tile_size_fails_naming_both_years(tmp_path):
    defs, db = _country(tmp_path)
    instance = DagsterInstance.ephemeral()
    assert _ingest(defs, 2018, instance).success
    assert _ingest(defs, 2020, instance).success  # the same size as 2018: no complaint
    failed = _ingest(defs, 2019, instance)
    assert not failed.success
    assert (
        "TSZ 2019: tiles are 32 px, 2018's are 16 px: set source.store_px (e.g. 16) so every "
        "year is stored at one size"
    ) in _failure(failed)
    # nothing written: no rows, no store
    assert warehouse.read(db, "patches", {"country": "TSZ", "year": 2019}).empty
    assert not list((tmp_path / "data").rglob("2019/*/manifest*"))
    assert list((tmp_path / "data").rglob("2018/*/manifest*"))


def test_one_store_px_stores_every_year_at_one_size(tmp_path):
    defs, db = _country(tmp_path, ", store_px: 16")
    instance = DagsterInstance.ephemeral()
    for year in SIDES:
        assert _ingest(defs, year, instance).success
        assert (
            warehouse.read(db, "patches", {"country": "TSZ", "year": year})["status"].eq("ok").all()
        )
