"""A synthetic country's `patches` cuts exactly the granules its `granules` rows list, and
`granules` removes the files of an earlier configuration once the table names the new set (a
failed render leaves the earlier set, files and rows, as it was)."""

from __future__ import annotations

import shutil
import textwrap

from dagster import DagsterInstance, materialize

from siscore_assets.core.imagery import granules as granules_lib
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

COUNTRIES = """
default: GRN
countries:
  GRN:
    years: [2017]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 14, ny: 14, tile_px: 32,
             granule_tiles: GT, n_annotators: 3, pretrain_images: 60}
"""
KEY = "GRN|2017"


def _run(tmp_path, granule_tiles: int, *names: str, raise_on_error: bool = True):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES).replace("GT", str(granule_tiles)))
    defs, _ = definitions_for(countries, tmp_path)
    result = materialize(
        list(defs.assets),
        selection=select(*names),
        partition_key=KEY,
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )
    warehouse = defs.resources["warehouse"]
    keys = {"country": "GRN", "year": 2017}
    return result, warehouse.read("granules", keys), warehouse.read("patches", keys)


def test_patches_cut_exactly_the_listed_granules(tmp_path):
    folder = tmp_path / "data" / "GRN" / "granules" / "2017"
    _, granules, patches = _run(tmp_path, 7, "granules", "patches")
    assert len(granules) == 4 and len(patches) == 196
    # a file no `granules` row lists (copied in by hand, left by another tool) is not cut
    shutil.copy(folder / "g_13903_6163.tif", folder / "g_stray.tif")
    result, _, patches = _run(tmp_path, 7, "patches")
    assert result.success and len(patches) == 196

    # another granule size: the earlier configuration's files go once the table lists the new
    _, granules, patches = _run(tmp_path, 14, "granules", "patches")
    assert sorted(q.name for q in folder.glob("*.tif")) == ["g_13903_6163.tif"]
    assert len(granules) == 1 and len(patches) == 196 and patches["tile_id"].is_unique


def test_a_failed_render_keeps_the_earlier_granules(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "GRN" / "granules" / "2017"
    _, before, _ = _run(tmp_path, 7, "granules")
    files = {q.name: q.read_bytes() for q in folder.glob("*.tif")}
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return write(*args, **kwargs)

    write = granules_lib.write_granule
    monkeypatch.setattr(granules_lib, "write_granule", failing)
    result, after, _ = _run(tmp_path, 4, "granules", raise_on_error=False)
    assert not result.success
    # nothing replaced, nothing lost
    assert {q.name: q.read_bytes() for q in folder.glob("*.tif")} == files
    assert after.equals(before) and not list(folder.glob(".staging-*"))
    monkeypatch.setattr(granules_lib, "write_granule", write)
    result, _, patches = _run(tmp_path, 7, "patches")
    assert result.success and len(patches) == 196


def test_a_listed_granule_that_is_gone_is_an_error(tmp_path):
    folder = tmp_path / "data" / "GRN" / "granules" / "2017"
    _run(tmp_path, 7, "granules")
    (folder / "g_13910_6170.tif").unlink()
    result, _, _ = _run(tmp_path, 7, "patches", raise_on_error=False)
    assert not result.success
