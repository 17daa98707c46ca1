"""An ingest killed with SIGKILL midway resumes without re-reading finished tiles and ends with
the same tiles, byte for byte, as an uninterrupted run; no partial tile is ever indexed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from siscore_assets.core.imagery.patches import save_stack
from siscore_assets.core.imagery.stac import ingest
from siscore_assets.core.imagery.stac.config import load_aoi
from siscore_assets_tests.core.imagery.stac.double import YEAR

ROOT = Path(__file__).resolve().parents[4]
KILL_AFTER = 3

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from siscore_assets.core.imagery.stac import ingest
    from siscore_assets.core.imagery.stac.config import parse_stac_source
    from siscore_assets_tests.core.imagery.stac.double import source_block
    url, selection = sys.argv[1], Path(sys.argv[2])
    cache, kill_after = Path(sys.argv[3]), int(sys.argv[4])
    cfg = parse_stac_source(source_block(url), "child")
    done = []
    def on_tile(tile):
        done.append(tile)
        if len(done) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    ingest.read_year(
        cfg, ingest.load_selection(selection), 14, cache, max_cloud=0.15, on_tile=on_tile
    )
""")


def _tiles(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in sorted(folder.rglob("*.npy")) if not p.name.startswith(".")
    }


def test_kill9_resume_is_byte_identical(api, cfg, tmp_path):
    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    selection = tmp_path / "selection.json"
    ingest.save_selection(sel, selection)

    # uninterrupted reference
    index_ref, stack_ref, stats_ref = ingest.read_year(
        cfg, sel, 14, tmp_path / "ref", max_cloud=0.15
    )
    save_stack(stack_ref, tmp_path / "ref.npy")
    assert stats_ref["tiles_read"] == 6

    # killed run: SIGKILL from inside, after KILL_AFTER tiles were written
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            api.url,
            str(selection),
            str(tmp_path / "run"),
            str(KILL_AFTER),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = _tiles(tmp_path / "run")
    assert KILL_AFTER <= len(partial) < 6
    ref_tiles = _tiles(tmp_path / "ref")
    assert all(
        ref_tiles[name] == data for name, data in partial.items()
    )  # finished tiles are whole

    # resume: only the missing tiles are read
    before = len(api.cog_requests())
    index, stack, stats = ingest.read_year(
        cfg, ingest.load_selection(selection), 14, tmp_path / "run", max_cloud=0.15
    )
    assert stats == {
        "tiles_read": 6 - len(partial),
        "tiles_cached": len(partial),
        "tiles_without_scene": 0,
    }
    assert len(api.cog_requests()) > before
    save_stack(stack, tmp_path / "run.npy")
    assert _tiles(tmp_path / "run") == ref_tiles
    assert (tmp_path / "run.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert index.equals(index_ref) and np.array_equal(stack, stack_ref)
    assert not list((tmp_path / "run").rglob(".*.tmp*"))  # no partial file left

    # a third run reads nothing at all
    n = len(api.cog_requests())
    assert ingest.read_year(cfg, sel, 14, tmp_path / "run", max_cloud=0.15)[2]["tiles_read"] == 0
    assert len(api.cog_requests()) == n


def test_a_committed_store_is_reused_without_its_records_for_the_same_plan_only(api, cfg, tmp_path):
    """Once `patches` deleted the read records, a rerun with the same scenes, settings and
    tiles reuses the committed store and reads nothing; another AOI over the same scenes is a
    new plan and is read."""
    import dataclasses

    from shapely.geometry import box, mapping

    from siscore_assets.core.imagery.stac import warp

    _, sel = ingest.select_year(cfg, load_aoi(cfg), YEAR)
    args = dict(max_cloud=0.15, store_root=tmp_path / "tiles")
    index, store, stats = ingest.read_year(cfg, sel, 14, tmp_path / "cache", **args)
    pixels = np.asarray(store[np.arange(len(store))])
    assert stats["tiles_read"] == 6 and warp.remove_records(tmp_path / "cache")["files"] == 6

    n = len(api.cog_requests())
    again, store2, stats2 = ingest.read_year(cfg, sel, 14, tmp_path / "cache", **args)
    assert stats2["tiles_read"] == 0 and len(api.cog_requests()) == n  # nothing read
    assert again.equals(index) and store2.folder == store.folder
    assert np.array_equal(np.asarray(store2[np.arange(len(store2))]), pixels)
    assert not (tmp_path / "cache").exists()

    first = index.iloc[0]  # an AOI inside one tile: the same scenes, another plan
    inner = box(first["lon"] - 1e-4, first["lat"] - 1e-4, first["lon"] + 1e-4, first["lat"] + 1e-4)
    one = dataclasses.replace(sel, aoi=mapping(inner))
    small, store3, stats3 = ingest.read_year(cfg, one, 14, tmp_path / "cache", **args)
    assert stats3["tiles_read"] == 1 and small["tile_id"].tolist() == [first["tile_id"]]
    assert len(api.cog_requests()) > n and store3.folder != store.folder  # a store of its own
    n = len(api.cog_requests())  # the first plan's store is untouched: reused, nothing read
    back, store4, stats4 = ingest.read_year(cfg, sel, 14, tmp_path / "cache", **args)
    assert stats4 == {"tiles_read": 0, "tiles_cached": 6, "tiles_without_scene": 0}
    assert len(api.cog_requests()) == n and back.equals(index)
    assert np.array_equal(np.asarray(store4[np.arange(len(store4))]), pixels)
