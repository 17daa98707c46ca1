"""Scenes for cloudy countries: how many of an AOI's zoom-14 tiles are usable when no single
scene is clear, under three rules:

* ``scene limit``: the rule before this change — scenes whose ``eo:cloud_cover`` is over
  ``max_scene_cloud`` (50 %) are never considered (emulated by dropping them; with ``--old FILE``
  the old ``selection.py`` itself is run on the same scenes);
* ``granule``: one scene per granule, chosen by the SCL inside the AOI;
* ``tile``: each tile its clearest scene of the season, the next clearest filling its clouds.

The catalogue is the monsoon double of the tests (``siscore_assets_tests/core/imagery/stac/
cloudy.py``: five scenes at 60-80 % scene cloud, each clear over two fifths of the AOI), served
over loopback HTTP, tiles read at 64 px.  Offline.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.cloudy_scenes [--old /tmp/old_selection.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from siscore_assets.core.imagery.grid import aoi_tiles
from siscore_assets.core.imagery.stac import ingest, warp
from siscore_assets.core.imagery.stac.config import load_aoi, parse_stac_source
from siscore_assets.core.imagery.stac.search import search_scenes
from siscore_assets_tests.core.imagery.stac.cloudy import (
    YEAR,
    cloudy_source,
    write_cloudy_catalogue,
)
from siscore_assets_tests.core.imagery.stac.double import StacDouble

MAX_CLOUD = 0.15  # the tile rule (patches.DEFAULT_MAX_CLOUD)


def _tile_figures(cache: Path, index) -> dict:
    """Usable share and the mean SCL cloud share left in the AOI's tiles (from the records)."""
    records = sorted(cache.glob("*/*.npy"))
    cloud = [float((np.load(p)[..., -1] >= warp.CLOUD_BIT).mean()) for p in records]
    return {
        "tiles": len(index),
        "usable": int((index["status"] == "ok").sum()),
        "mean_cloud": float(np.mean(cloud)) if cloud else float("nan"),
    }


def run(old: Path | None) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="cloudy_") as tmp:
        folder = Path(tmp)
        items = write_cloudy_catalogue(folder / "cogs", "http://placeholder")
        with StacDouble(folder / "cogs") as api:
            api.items = [
                {
                    **it,
                    "assets": {
                        k: {**a, "href": a["href"].replace("http://placeholder", api.url)}
                        for k, a in it["assets"].items()
                    },
                }
                for it in items
            ]
            base = parse_stac_source(cloudy_source(api.url), "benchmark")
            aoi = load_aoi(base)
            scenes, _ = search_scenes(base, aoi, YEAR)
            n_tiles = len(aoi_tiles(aoi, 14))
            under = [s for s in scenes if s.cloud <= base.max_scene_cloud]
            row = {"rule": "scene limit (before)", "scenes": len(scenes), "considered": len(under)}
            if old is not None:
                spec = importlib.util.spec_from_file_location("old_selection", old)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                _, chosen, skipped = mod.select_scenes(scenes, base, YEAR, lambda s: (0.0, 0.0))
                row["old_code_chosen"] = len(chosen)
                row["old_code_skipped"] = "; ".join(skipped)
            row.update(tiles=n_tiles, usable=0 if not under else None)
            out.append(row)
            for mode in ("granule", "tile"):
                cfg = parse_stac_source(cloudy_source(api.url, scene_choice=mode), "benchmark")
                t0 = time.perf_counter()
                table, sel = ingest.select_year(cfg, aoi, YEAR)
                t_sel = time.perf_counter() - t0
                cache = folder / f"cache_{mode}"
                index, _, _ = ingest.read_year(cfg, sel, 14, cache, max_cloud=MAX_CLOUD)
                out.append(
                    {
                        "rule": mode,
                        "scenes": len(scenes),
                        "considered": int(table["unusable_share"].notna().sum()),  # SCL read
                        "chosen": len(sel.chosen),
                        # granule: the best scene's AOI share; tile: mean over the tiles' best
                        "unusable_of_choice": round(
                            float(table["unusable_share"].min())
                            if mode == "granule"
                            else float(np.mean([r["unusable_share"] for r in sel.tile_rows])),
                            3,
                        ),
                        "select_s": round(t_sel, 2),
                        **_tile_figures(cache, index),
                    }
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, default=None, help="the old selection.py to run as well")
    args = ap.parse_args()
    for row in run(args.old):
        print(row)


if __name__ == "__main__":
    main()
