"""A STAC country-year end to end: search and select (kept as a selection file), then read.

The selection file is what the `granules` and `patches` steps read, so a rerun of `patches` never
searches again and reads exactly the scenes recorded in `stac_scenes`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac import warp
from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.remote import Signer
from siscore_assets.core.imagery.stac.search import Scene, search_scenes
from siscore_assets.core.imagery.stac.selection import measure_scl, select_scenes
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.files import atomic_path

SCENE_COLUMNS = [
    "granule_id",
    "item_id",
    "date",
    "status",
    "rank",
    "chosen",
    "reason",
    "scene_cloud_pct",
    "scl_cloud_share",
    "scl_nodata_share",
    "unusable_share",
    "days_from_centre",
    "processing_baseline",
    "harmonise_offset",
    "epsg",
]


@dataclass(frozen=True)
class Selection:
    year: int
    aoi: dict  # GeoJSON geometry, lon/lat
    chosen: tuple[Scene, ...]
    skipped: tuple[str, ...]  # granules with no usable scene, and unusable items

    @property
    def aoi_shape(self) -> BaseGeometry:
        return shape(self.aoi)


def select_year(
    cfg: StacSource,
    aoi: BaseGeometry,
    year: int,
    signer: Signer | None = None,
) -> tuple[pd.DataFrame, Selection]:
    """Search, rank and choose: (the `stac_scenes` rows, the selection).

    No scene at all, or no granule with a usable scene, is an error naming the API and year."""
    signer = signer or Signer(cfg.sign, cfg.resign_after_s)
    scenes, unusable = search_scenes(cfg, aoi, year)
    rows, chosen, skipped = select_scenes(
        scenes, cfg, year, lambda s: measure_scl(s, aoi, cfg, signer)
    )
    if not chosen:
        raise LookupError(
            f"{cfg.api} {year}: no granule has a scene at or under max_scene_cloud "
            f"{cfg.max_scene_cloud:.1f}%: " + "; ".join(skipped)
        )
    table = pd.DataFrame(rows, columns=SCENE_COLUMNS)
    return table, Selection(year, mapping(aoi), tuple(chosen), tuple(skipped + unusable))


def save_selection(sel: Selection, path: Path) -> None:
    data = {
        "year": sel.year,
        "aoi": sel.aoi,
        "chosen": [s.to_dict() for s in sel.chosen],
        "skipped": list(sel.skipped),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def load_selection(path: Path) -> Selection:
    if not path.is_file():
        raise FileNotFoundError(
            f"no STAC selection at {path}: materialise 'stac_scenes' for this year first"
        )
    d = json.loads(path.read_text(encoding="utf-8"))
    return Selection(
        int(d["year"]),
        d["aoi"],
        tuple(Scene.from_dict(s) for s in d["chosen"]),
        tuple(d["skipped"]),
    )


def plans_for(sel: Selection, z: int) -> list[warp.TilePlan]:
    return warp.plan_tiles(warp.aoi_tiles(sel.aoi_shape, z), list(sel.chosen))


def read_year(
    cfg: StacSource,
    sel: Selection,
    z: int,
    cache_root: Path,
    *,
    max_cloud: float,
    signer: Signer | None = None,
    on_tile: Callable[[Tile], None] | None = None,
    store_root: Path | None = None,
    store_px: int | None = None,
) -> tuple[pd.DataFrame, np.ndarray | tile_store.TileStore, dict[str, int]]:
    """Every AOI tile read from the chosen scenes (resuming from the cache): (index, images,
    counts).  With ``store_root`` the images go straight into a tile store under it (block by
    block, never the whole year in memory); without, an in-memory stack (small AOIs, tests)."""
    plans = plans_for(sel, z)
    key = warp.cache_key(cfg, list(sel.chosen))
    folder = cache_root / key
    stats = warp.ingest_tiles(plans, cfg, folder, signer, on_tile)
    if store_root is None:
        index, stack = warp.assemble(plans, folder, max_cloud=max_cloud)
        return index, stack, stats
    store_folder = store_root / f"stac-{key[:12]}-{store_px or 'native'}-{max_cloud:g}"
    index, store = warp.assemble_store(
        plans, folder, store_folder, max_cloud=max_cloud, store_px=store_px
    )
    return index, store, stats
