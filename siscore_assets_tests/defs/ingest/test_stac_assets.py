"""A STAC country through the ingest assets: `stac_scenes` -> `granules` -> `patches` land in the
same tables and tile stack every source uses; a year with no scene fails with a clear error and
leaves the other year's rows and files untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from dagster import DagsterInstance, materialize

from siscore_assets.core.storage.tile_store import open_stack
from siscore_assets.defs.common.resources import Warehouse
from siscore_assets_tests.conftest import select
from siscore_assets_tests.core.imagery.stac.double import (
    FAILING,
    StacDouble,
    source_block,
    write_catalogue,
)
from siscore_assets_tests.fixtures.definitions import definitions_for


@pytest.fixture
def stc(tmp_path: Path, request):
    extra = dict(getattr(request, "param", {}))  # more source keys
    failing = {**FAILING, **extra.pop("failing", {})}  # file -> HTTP 500s before it reads
    with StacDouble(tmp_path / "cogs", failing=failing) as api:
        api.items = write_catalogue(tmp_path / "cogs", api.url)
        countries = tmp_path / "countries.yaml"
        countries.write_text(
            yaml.safe_dump(
                {
                    "default": "STC",
                    "countries": {
                        "STC": {
                            "name": "STAC test country",
                            "years": [2019, 2022],
                            "source": {**source_block(api.url), **extra},
                            "districts": "none",
                            "proxies": "none",
                            "covariates": "none",
                        }
                    },
                }
            )
        )
        defs, db = definitions_for(countries, tmp_path)
        instance = DagsterInstance.ephemeral()

        def run(key: str, raise_on_error: bool = True):
            return materialize(
                list(defs.assets),
                selection=select("stac_scenes", "granules", "patches"),
                partition_key=key,
                resources=dict(defs.resources),
                instance=instance,
                raise_on_error=raise_on_error,
            )

        yield run, Warehouse(database=str(db)), tmp_path / "data"


def _patches_metadata(result) -> dict:
    mat = next(
        m
        for m in result.asset_materializations_for_node("patches")
        if m.asset_key.path == ["patches"]
    )
    return {k: v.value for k, v in mat.metadata.items()}


def test_stac_country_lands_in_patches_and_failed_year_leaves_it_intact(stc):
    run, wh, data = stc
    first = run("STC|2022")
    assert first.success
    freed = _patches_metadata(first)  # 6 records of 256 x 256 x 4 bytes (+ .npy headers)
    assert (freed["tile_cache_files_removed"], freed["tile_cache_mb_freed"]) == (6, 1.574)
    scenes = wh.read("stac_scenes", {"country": "STC", "year": 2022}, order_by="item_id")
    assert dict(
        zip(scenes.loc[scenes["chosen"], "granule_id"], scenes.loc[scenes["chosen"], "item_id"])
    ) == {"51SZH": "51_clear", "52SBC": "52_b0400"}
    granules = wh.read("granules", {"country": "STC", "year": 2022}, order_by="granule_id")
    assert (
        granules["granule_id"].tolist() == ["51SZH", "52SBC"]
        and (granules["width_px"] % 256 == 0).all()
    )
    patches = wh.read("patches", {"country": "STC", "year": 2022}, order_by="tile_id")
    assert len(patches) == 6 and patches["tile_id"].is_unique and (patches["status"] == "ok").all()
    stack = np.asarray(open_stack(patches["stack_path"].iloc[0]))
    assert stack.shape == (6, 256, 256, 3) and stack.dtype == np.uint8
    # the read records (262 KB a tile: RGB + flag) go once the store is indexed
    assert not (data / "STC" / "stac_tiles" / "2022").exists()
    before = {p: p.read_bytes() for p in sorted((data / "STC").rglob("*")) if p.is_file()}

    result = run("STC|2019", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no sentinel-2-l2a scene in http://127.0.0.1" in str(failure.event_specific_data.error)
    assert wh.read("patches", {"country": "STC", "year": 2019}).empty
    assert wh.read("stac_scenes", {"country": "STC", "year": 2019}).empty
    assert len(wh.read("patches", {"country": "STC", "year": 2022})) == 6
    after = {p: p.read_bytes() for p in sorted((data / "STC").rglob("*")) if p.is_file()}
    assert after == before  # nothing written for 2019, 2022's files untouched

    rerun = run("STC|2022")  # the records are gone, the committed store is reused: no read
    assert rerun.success and _patches_metadata(rerun)["tile_cache_files_removed"] == 0
    assert np.array_equal(np.asarray(open_stack(patches["stack_path"].iloc[0])), stack)
    again = wh.read("patches", {"country": "STC", "year": 2022}, order_by="tile_id")
    assert again.equals(patches)


@pytest.mark.parametrize(
    "stc", [{"retries": 0, "failing": {"52_b0400_B04.tif": 10_000}}], indirect=True
)
def test_a_read_that_fails_keeps_its_records_for_the_resume(stc):
    run, wh, data = stc  # one COG never reads: 2 of the 6 tiles have no other scene, too many
    result = run("STC|2022", raise_on_error=False)
    assert not result.success and wh.read("patches", {"country": "STC", "year": 2022}).empty
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "record(s) unreadable after retries" in str(failure.event_specific_data.error)
    assert "/cogs/52_b0400_B04.tif" in str(failure.event_specific_data.error)
    assert list((data / "STC" / "stac_tiles" / "2022").rglob("*.npy"))  # finished tiles kept


@pytest.mark.parametrize("stc", [{"keep_tile_cache": True}], indirect=True)
def test_keep_tile_cache_keeps_the_read_records_and_a_rerun_reads_nothing(stc):
    run, wh, data = stc
    first = run("STC|2022")
    records = sorted((data / "STC" / "stac_tiles" / "2022").rglob("*.npy"))
    assert first.success and len(records) == 6
    assert np.load(records[0]).shape == (256, 256, 4)  # RGB + the scene flag
    assert "tile_cache_files_removed" not in _patches_metadata(first)
    stack = np.asarray(
        open_stack(wh.read("patches", {"country": "STC", "year": 2022})["stack_path"].iloc[0])
    )
    before = {p: p.stat().st_mtime_ns for p in records}
    assert run("STC|2022").success
    # the committed store is reused (`warp.committed_read`): its records are not even opened
    assert {p: p.stat().st_mtime_ns for p in records} == before
    again = wh.read("patches", {"country": "STC", "year": 2022})["stack_path"].iloc[0]
    assert np.array_equal(np.asarray(open_stack(again)), stack)
