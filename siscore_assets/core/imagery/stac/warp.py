"""Chosen scenes read onto the zoom-14 Web-Mercator grid: window reads, harmonising, mosaicking.

Reads use rasterio's ``WarpedVRT`` (not rio-tiler): it is already a dependency, it takes the
exact destination transform of a grid tile, and a read fetches only the COG blocks under it.

Per tile and scene: each band is warped from the granule's UTM zone onto the tile (``resampling``,
default nearest: every output pixel is a source pixel), DN 0 is no-data, the baseline offset is
subtracted (``Scene.offset``, clipped at 0), and the **stretch** is linear: harmonised DN
0..``stretch_max`` (reflectance 0..0.30 by default) -> 0..255, rounded, clipped.  Scenes of a tile
are mosaicked least cloud first: a pixel takes the first scene where it is clear (SCL), else the
first where it has data.  Each finished tile is written atomically to an on-disk cache keyed by
the selection and read settings, so a killed run resumes where it stopped and ends byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import mercantile
import numpy as np
import pandas as pd
from PIL import Image
from shapely.geometry import box

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.patches import (
    MAX_NODATA_SHARE,
    STATUS_BLANK,
    STATUS_CLOUDY,
    STATUS_CORRUPT,
    STATUS_OK,
    with_bounds,
)
from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.records import SceneReadError, read_band, read_records
from siscore_assets.core.imagery.stac.remote import OpenedDatasets, Signer
from siscore_assets.core.imagery.stac.search import Scene
from siscore_assets.core.imagery.stac.selection import SCL_CLOUD
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.files import atomic_path

CLOUD_BIT = 128  # in a tile record's flag band: the pixel came from a scene where it is cloud
MAX_BLANK_SHARE = MAX_NODATA_SHARE  # the no-data rule of every source


@dataclass(frozen=True)
class TilePlan:
    tile: Tile
    scenes: tuple[Scene, ...]  # mosaic order: least scene cloud first
    #: item ids not read (an asset of theirs failed every retry); the flag band still counts
    #: ``scenes`` so the index names the scenes a tile was read from
    skip: frozenset[str] = frozenset()

    @property
    def reads(self) -> tuple[Scene, ...]:
        return tuple(s for s in self.scenes if s.item_id not in self.skip)


def without_scene(plan: TilePlan, err: SceneReadError) -> TilePlan | None:
    """The plan without the scene that failed every retry, if another scene is left to read."""
    left = plan.skip | {err.item_id}
    return replace(plan, skip=left) if any(s.item_id not in left for s in plan.scenes) else None


def plan_tiles(tiles: list[Tile], chosen: list[Scene]) -> list[TilePlan]:
    """Per tile, the chosen scenes whose footprint covers part of it, least cloud first."""
    shapes = [(s, s.shape) for s in sorted(chosen, key=lambda s: (s.cloud, s.granule, s.item_id))]
    plans = []
    for t in tiles:
        b = mercantile.bounds(t.x, t.y, t.z)
        tb = box(b.west, b.south, b.east, b.north)
        plans.append(
            TilePlan(t, tuple(s for s, g in shapes if g.intersects(tb) and not g.touches(tb)))
        )
    return plans


def cache_key(cfg: StacSource, chosen: list[Scene]) -> str:
    """Digest of all a tile's pixels depend on, so a changed selection never reuses old tiles."""
    spec = {
        "bands": cfg.bands,
        "stretch": cfg.stretch_max,
        "resampling": cfg.resampling,
        "px": cfg.tile_px,
        "scenes": sorted((s.item_id, s.offset, sorted(s.hrefs.items())) for s in chosen),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def record_path(folder: Path, tile: Tile) -> Path:
    return folder / f"{tile.z}_{tile.x}_{tile.y}.npy"


def stretch(dn: np.ndarray, offset: int, stretch_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(8-bit values, valid mask) of raw L2A DN: 0 is no-data, offset subtracted, linear stretch."""
    raw = dn.astype(np.int32)
    valid = raw > 0
    h = np.clip(raw - offset, 0, None)
    out = np.minimum((h * 255 + stretch_max // 2) // stretch_max, 255).astype(np.uint8)
    return np.where(valid, out, 0).astype(np.uint8), valid


def _warp(src, tile: Tile, px: int, resampling: str = "nearest") -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from rasterio.vrt import WarpedVRT

    tf = from_bounds(*tile.bounds_3857(), px, px)
    with WarpedVRT(
        src,
        crs="EPSG:3857",
        transform=tf,
        width=px,
        height=px,
        src_nodata=0,
        nodata=0,
        resampling=Resampling[resampling],
    ) as vrt:
        return vrt.read(1)


def compose_tile(plan: TilePlan, cfg: StacSource, opened: OpenedDatasets) -> np.ndarray:
    """One tile record: (px, px, bands + 1) uint8, the last band a flag (0 no-data, k = k-th scene
    of the plan, + CLOUD_BIT where that scene's SCL says cloud)."""
    px, nb = cfg.tile_px, len(cfg.bands)
    rec = np.zeros((px, px, nb + 1), np.uint8)
    flag = rec[..., nb]
    for k, scene in enumerate(plan.scenes, start=1):
        if scene.item_id in plan.skip:
            continue
        bands, valid = [], np.ones((px, px), bool)
        for band in cfg.bands:
            v, ok = stretch(
                read_band(opened, scene, band, lambda s: _warp(s, plan.tile, px, cfg.resampling)),
                scene.offset,
                cfg.stretch_max,
            )
            bands.append(v)
            valid &= ok
        cloud = (
            np.isin(read_band(opened, scene, "SCL", lambda s: _warp(s, plan.tile, px)), SCL_CLOUD)
            if "SCL" in scene.hrefs
            else np.zeros((px, px), bool)
        )
        clear_take = valid & ~cloud & ((flag == 0) | (flag >= CLOUD_BIT))
        cloudy_take = valid & cloud & (flag == 0)
        for take, f in ((clear_take, k), (cloudy_take, k | CLOUD_BIT)):
            for i, v in enumerate(bands):
                rec[..., i][take] = v[take]
            flag[take] = f
        if ((flag > 0) & (flag < CLOUD_BIT)).all():
            break  # every pixel clear: later (cloudier) scenes cannot improve the tile
    return rec


def ingest_tiles(
    plans: list[TilePlan],
    cfg: StacSource,
    folder: Path,
    signer: Signer | None = None,
    on_tile: Callable[[Tile], None] | None = None,
) -> tuple[dict[str, int], dict[Path, str]]:
    """Read every planned tile not yet in ``folder`` (threads, retries), each written atomically;
    a tile whose scene's asset fails every retry is read from its next scenes (``records``).

    Returns counts (tiles read now, found already finished, without any scene) and the tiles
    unreadable from every scene (record path -> reason naming the hrefs; ``assemble`` marks them
    corrupt)."""
    covered = [p for p in plans if p.scenes]
    done = read_records(
        covered,
        cfg,
        folder,
        lambda p: record_path(folder, p.tile),
        compose_tile,
        lambda p: f"tile {p.tile.tile_id} from {', '.join(s.item_id for s in p.reads)}",
        signer,
        None if on_tile is None else (lambda p: on_tile(p.tile)),
        fallback=without_scene,
    )
    stats = {
        "tiles_read": done.read,
        "tiles_cached": done.cached,
        "tiles_without_scene": len(plans) - len(covered),
    }
    return stats, done.failed


def plan_digest(items: Iterable[str]) -> str:
    """A short digest of what a read planned (its tile or patch ids, or its AOI), part of its
    store's name with the scenes and settings: another plan over the same scenes writes another
    store, so a store and the stored means and parts keyed by its name are never mixed."""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:8]


#: The read's whole index (every planned tile or patch, usable or not, with its reason), kept
#: beside its committed store: a rerun of the same plan reuses both without reading anything.
READ_INDEX = "read_index.parquet"
NO_SCENE = "no chosen scene covers this tile"


def keep_index(store: tile_store.TileStore, index: pd.DataFrame) -> None:
    """Write the read's whole ``index`` beside its committed ``store``; after the store's
    manifest, so a store without it is read again, never half reused."""
    with atomic_path(store.folder / READ_INDEX) as tmp:
        index.to_parquet(tmp, index=False)


def store_folder(
    root: Path, kind: str, key: str, plan: str, store_px: int | None, max_cloud: float
) -> Path:
    """Where a read's tile store is committed: its name digests the scenes and read settings
    (``key``), what was planned (``plan``), the stored size and the cloud limit, so a rerun of
    the same read finds it (:func:`committed_read`) and any other read gets its own."""
    return root / f"{kind}-{key[:12]}-{plan}-{store_px or 'native'}-{max_cloud:g}"


def committed_read(store_folder: Path) -> tuple[pd.DataFrame, tile_store.TileStore] | None:
    """(index, store) of an earlier read into ``store_folder`` (its name digests the scenes, the
    read settings and the plan) when both were finished and agree; else None.  Lets a rerun
    skip the network once the read records are gone (:func:`remove_records`)."""
    path = store_folder / READ_INDEX
    if not path.is_file():
        return None
    try:
        store = tile_store.TileStore(store_folder)
        index = pd.read_parquet(path)
    except (OSError, ValueError, tile_store.TileStoreError):
        return None
    return (index, store) if int((index["image_row"] >= 0).sum()) == len(store) else None


def remove_records(cache_root: Path) -> dict[str, int]:
    """Delete a year's read records (every cache key under ``cache_root``) once its tile store is
    committed and indexed: they only serve to resume a killed read, and at 256 px with the flag
    band a record is 262 KB, more than the stored tile itself.  Returns the files and bytes
    freed."""
    files = [p for p in cache_root.rglob("*") if p.is_file()] if cache_root.is_dir() else []
    freed = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    shutil.rmtree(cache_root, ignore_errors=True)
    return freed


def record_status(
    rgb: np.ndarray, flag: np.ndarray, max_cloud: float, what: str
) -> tuple[str, str | None]:
    """(status, problem) of a warped record (a grid tile or a granule patch, ``what``): blank when
    mostly no data or without signal, cloudy by the SCL share; the one rule both sources use."""
    nodata, cloud = float((flag == 0).mean()), float((flag >= CLOUD_BIT).mean())
    if nodata > MAX_BLANK_SHARE:
        return STATUS_BLANK, f"no data over {nodata:.0%} of the {what}"
    if cloud >= max_cloud:
        return STATUS_CLOUDY, f"SCL cloud {cloud:.2f} >= {max_cloud:.2f}"
    if float(rgb.std()) < 1.0:
        return STATUS_BLANK, f"no signal (constant {what})"
    return STATUS_OK, None


def _assembled(
    plans: list[TilePlan], folder: Path, max_cloud: float, failed: Mapping[Path, str]
) -> Iterator[tuple[dict, np.ndarray | None]]:
    """(index row, RGB or None) per planned tile from the finished tile records: same rules as
    every source (blank / cloudy tiles reported with the reason, never stored; a tile that no
    scene could be read for is corrupt, its reason naming the hrefs)."""
    for plan in plans:
        t = plan.tile
        row = {
            "granule_id": None,
            "z": t.z,
            "x": t.x,
            "y": t.y,
            "status": STATUS_BLANK,
            "image_row": -1,
            "problem": NO_SCENE,
            "scenes": "",
        }
        rgb, path = None, record_path(folder, t)
        if (why := failed.get(path)) is not None:
            row.update(granule_id=plan.scenes[0].granule, status=STATUS_CORRUPT, problem=why)
        elif plan.scenes:
            rec = np.load(path)
            rgb, flag = np.ascontiguousarray(rec[..., :3]), rec[..., -1]
            used = np.bincount(
                (flag[flag > 0] & (CLOUD_BIT - 1)).ravel(), minlength=len(plan.scenes) + 1
            )
            main = int(used[1:].argmax()) if used[1:].any() else 0
            row.update(
                granule_id=plan.scenes[main].granule,
                status=STATUS_OK,
                problem=None,
                scenes=";".join(s.item_id for k, s in enumerate(plan.scenes, 1) if used[k]),
            )
            status, problem = record_status(rgb, flag, max_cloud, "tile")
            row.update(status=status, problem=problem)
        yield row, (rgb if row["status"] == STATUS_OK else None)


def _index(rows: list[dict]) -> pd.DataFrame:
    index = pd.DataFrame(
        rows, columns=["granule_id", "z", "x", "y", "status", "problem", "image_row", "scenes"]
    )
    index["tile_id"] = [
        Tile(int(z), int(x), int(y)).tile_id for z, x, y in zip(index["z"], index["x"], index["y"])
    ]
    return with_bounds(index)


def assemble(
    plans: list[TilePlan],
    folder: Path,
    *,
    max_cloud: float,
    failed: Mapping[Path, str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The `patches` index and the RGB stack, in memory (small AOIs and tests)."""
    rows, images = [], []
    for row, rgb in _assembled(plans, folder, max_cloud, failed or {}):
        if rgb is not None:
            row["image_row"] = len(images)
            images.append(rgb)
        rows.append(row)
    stack = np.stack(images) if images else np.zeros((0, 1, 1, 3), np.uint8)
    return _index(rows), stack


def assemble_store(
    plans: list[TilePlan],
    folder: Path,
    store_folder: Path,
    *,
    max_cloud: float,
    store_px: int | None = None,
    rows_per_block: int = 4096,
    failed: Mapping[Path, str] | None = None,
) -> tuple[pd.DataFrame, tile_store.TileStore]:
    """The `patches` index and a committed tile store, written block by block as the records
    are read (``store_px``: resampled to that size): a year is never held in memory."""
    rows, store = store_images(
        _assembled(plans, folder, max_cloud, failed or {}),
        store_folder,
        store_px=store_px,
        rows_per_block=rows_per_block,
    )
    index = _index(rows)
    keep_index(store, index)
    return index, store


def store_images(
    pairs: Iterable[tuple[dict, np.ndarray | None]],
    store_folder: Path,
    *,
    store_px: int | None = None,
    rows_per_block: int = 4096,
) -> tuple[list[dict], tile_store.TileStore]:
    """(index row, RGB or None) pairs into a committed tile store, ``rows_per_block`` images a
    block, each image resampled to ``store_px`` (default: the first image's size) and its row
    given ``image_row``: (the rows, the store).  A failure commits nothing."""
    rows: list[dict] = []
    blocks: list[tile_store.Block] = []
    writer: tile_store.BlockWriter | None = None
    px, stored = store_px, 0

    def close(w: tile_store.BlockWriter) -> None:
        blocks.append(w.finish(pd.DataFrame({"row": np.arange(w.rows)}), store_folder.name, px))

    try:
        for row, rgb in pairs:
            if rgb is not None:
                px = px or rgb.shape[0]
                if rgb.shape[0] != px:
                    rgb = np.asarray(Image.fromarray(rgb).resize((px, px), Image.Resampling.BOX))
                writer = writer or tile_store.BlockWriter(store_folder, f"rows_{stored:09d}")
                writer.append(rgb)
                row["image_row"] = stored
                stored += 1
                if writer.rows == rows_per_block:
                    close(writer)
                    writer = None
            rows.append(row)
        if writer is not None:
            close(writer)
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    return rows, tile_store.commit(store_folder, blocks, px or 0)


def granule_rows(plans: list[TilePlan], chosen: list[Scene], tile_px: int) -> pd.DataFrame:
    """The `granules` table of a STAC country-year: one row per granule, the block of every tile
    some chosen scene of it is planned for (the siScore overlay ``<granule_id>.tif`` is drawn per
    row, so a per-tile choice's several scenes of a granule must not split it), named after the
    granule's scene that most tiles take first among its scenes."""
    ids = {s.item_id for s in chosen}
    tiles: dict[str, list[Tile]] = {}
    firsts: dict[str, dict[str, int]] = {}
    for p in plans:
        seen: set[str] = set()
        for s in p.scenes:
            if s.item_id not in ids or s.granule in seen:
                continue
            seen.add(s.granule)
            tiles.setdefault(s.granule, []).append(p.tile)
            counts = firsts.setdefault(s.granule, {})
            counts[s.item_id] = counts.get(s.item_id, 0) + 1
    order = {s.item_id: k for k, s in enumerate(chosen)}  # ties: the order of the selection
    by_item = {s.item_id: s for s in chosen}
    rows = []
    for granule in sorted(tiles):
        counts = firsts[granule]
        s = by_item[min(counts, key=lambda i: (-counts[i], order[i]))]
        ts = tiles[granule]
        x0, y0 = min(t.x for t in ts), min(t.y for t in ts)
        nx, ny = max(t.x for t in ts) - x0 + 1, max(t.y for t in ts) - y0 + 1
        rows.append(
            {
                "granule_id": granule,
                "path": s.hrefs[next(iter(s.hrefs))],
                "item_id": s.item_id,
                "tile_x0": x0,
                "tile_y0": y0,
                "tiles_x": nx,
                "tiles_y": ny,
                "width_px": nx * tile_px,
                "height_px": ny * tile_px,
                "epsg": s.epsg,
            }
        )
    return pd.DataFrame(rows)
