"""A STAC country-year end to end: search and select (kept as a selection file), then read.

The selection file is what the `granules` and `patches` steps read, so a rerun of `patches` never
searches again and reads exactly the scenes recorded in `stac_scenes`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.grid import Tile, aoi_tiles
from siscore_assets.core.imagery.stac import warp
from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.remote import Signer
from siscore_assets.core.imagery.stac.search import Scene, on_aoi, search_scenes
from siscore_assets.core.imagery.stac.selection import (
    TILE_COLUMNS,
    measure_scl,
    measure_scl_tiles,
    select_scenes,
    select_tiles,
)
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
    #: ``scene_choice: tile``: per tile id, its scenes' item ids, clearest first (else None)
    tile_scenes: Mapping[str, tuple[str, ...]] | None = None
    #: ``scene_choice: tile``: one record per tile (``selection.TILE_COLUMNS``)
    tile_rows: tuple[dict, ...] = field(default=(), compare=False)
    #: the zoom the per-tile choice was made at: ``tile_scenes`` is keyed by its tile ids
    z: int = 14

    @property
    def aoi_shape(self) -> BaseGeometry:
        return shape(self.aoi)


def select_year(
    cfg: StacSource,
    aoi: BaseGeometry,
    year: int,
    signer: Signer | None = None,
    z: int = 14,
) -> tuple[pd.DataFrame, Selection]:
    """Search, rank and choose: (the `stac_scenes` rows, the selection); with
    ``scene_choice: tile`` per zoom-``z`` tile (its record: ``Selection.tile_rows``).

    No scene at all, or no granule with a usable scene, is an error naming the API and year."""
    signer = signer or Signer(cfg.sign, cfg.resign_after_s)
    scenes, unusable = search_scenes(cfg, aoi, year)
    order, tile_rows = None, ()
    if cfg.scene_choice == "tile":
        choice = select_tiles(
            scenes,
            aoi_tiles(aoi, z),
            cfg,
            year,
            lambda s, tiles: measure_scl_tiles(s, tiles, cfg, signer),
        )
        rows, chosen, skipped = choice.rows, choice.chosen, choice.skipped
        order, tile_rows = choice.order, tuple(choice.tiles)
    else:
        scenes, missed = on_aoi(scenes, aoi)
        rows, chosen, skipped = select_scenes(
            scenes, cfg, year, lambda s: measure_scl(s, aoi, cfg, signer)
        )
        skipped = missed + skipped
    if not chosen:
        raise LookupError(
            f"{cfg.api} {year}: no scene shows a clear pixel of the AOI "
            f"(scenes at or under max_scene_cloud {cfg.max_scene_cloud:.1f}% read first): "
            + "; ".join(skipped)
        )
    table = pd.DataFrame(rows, columns=SCENE_COLUMNS)
    sel = Selection(
        year, mapping(aoi), tuple(chosen), tuple(skipped + unusable), order, tile_rows, z
    )
    return table, sel


def save_selection(sel: Selection, path: Path) -> None:
    """The selection file, and beside it the per-tile record of a per-tile choice (removed for a
    per-granule one, so a record of an earlier ``scene_choice: tile`` run never outlives it)."""
    data = {
        "year": sel.year,
        "aoi": sel.aoi,
        "chosen": [s.to_dict() for s in sel.chosen],
        "skipped": list(sel.skipped),
        "z": sel.z,
    }
    if sel.tile_scenes is not None:
        data["tile_scenes"] = {k: list(v) for k, v in sel.tile_scenes.items()}
        with atomic_path(tile_record_path(path)) as tmp:
            pd.DataFrame(list(sel.tile_rows), columns=TILE_COLUMNS).to_csv(tmp, index=False)
    else:
        tile_record_path(path).unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def tile_record_path(selection: Path) -> Path:
    """Beside the selection file: which scene each tile uses and why (``scene_choice: tile``)."""
    return selection.with_name("stac_tile_scenes.csv")


def load_selection(path: Path) -> Selection:
    """The selection :func:`save_selection` wrote (one without ``z`` was made at zoom 14)."""
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
        {k: tuple(v) for k, v in d["tile_scenes"].items()} if "tile_scenes" in d else None,
        z=int(d.get("z", 14)),
    )


def plans_for(sel: Selection, z: int) -> list[warp.TilePlan]:
    """Per AOI tile the scenes it is read from: the chosen ones covering it, least cloud first;
    with a per-tile selection, the tile's own scenes, clearest first (made at zoom ``z``: another
    zoom's tile ids match none, so that is a ``ValueError``, not a year of blank tiles)."""
    if sel.tile_scenes is not None and sel.z != z:
        raise ValueError(
            f"the per-tile STAC selection of {sel.year} was made at zoom {sel.z}, but its tiles "
            f"are read at zoom {z}: materialise 'stac_scenes' for this year again"
        )
    tiles = aoi_tiles(sel.aoi_shape, z)
    if sel.tile_scenes is None:
        return warp.plan_tiles(tiles, list(sel.chosen))
    by_item = {s.item_id: s for s in sel.chosen}
    return [
        warp.TilePlan(t, tuple(by_item[i] for i in sel.tile_scenes.get(t.tile_id, ())))
        for t in tiles
    ]


def _cache_key(cfg: StacSource, sel: Selection) -> str:
    """The tile cache's key: the scenes and read settings, and the per-tile order if any."""
    key = warp.cache_key(cfg, list(sel.chosen))
    if sel.tile_scenes is None:
        return key
    order = json.dumps(sorted((k, list(v)) for k, v in sel.tile_scenes.items()))
    return hashlib.sha256((key + order).encode()).hexdigest()[:16]


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
    key = _cache_key(cfg, sel)
    folder = cache_root / key
    plan = warp.plan_digest(p.tile.tile_id for p in plans)
    store_folder = (
        warp.store_folder(store_root, "stac", key, plan, store_px, max_cloud)
        if store_root
        else None
    )
    if store_folder is not None and (done := warp.committed_read(store_folder)) is not None:
        index, store = done  # the same scenes, settings and tiles, read and stored before
        without = int((index["problem"] == warp.NO_SCENE).sum())
        reused = {"tiles_read": 0, "tiles_cached": len(index) - without}
        return index, store, {**reused, "tiles_without_scene": without}
    stats, failed = warp.ingest_tiles(plans, cfg, folder, signer, on_tile)
    if store_folder is None:
        index, stack = warp.assemble(plans, folder, max_cloud=max_cloud, failed=failed)
        return index, stack, stats
    index, store = warp.assemble_store(
        plans, folder, store_folder, max_cloud=max_cloud, store_px=store_px, failed=failed
    )
    return index, store, stats
