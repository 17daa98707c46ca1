"""The reproduction's alternative to the grid: each chosen granule cut into ``per_side`` x
``per_side`` patches of ``px`` pixels (32 x 343 px: 10,976 of a granule's 10,980 px, the last 4
dropped), ids ``granule/row/col``, georeferenced in the granule's own UTM CRS.

No reprojection: a patch is a window of the scene's 10 m bands on their own pixel grid, so every
patch pixel *is* a source pixel (harmonised and stretched like a grid tile, ``warp.stretch``).
The 20 m SCL band is read onto the same window (nearest) for the cloud share.  Only patches that
touch the AOI are read.  Each patch is one record in an on-disk cache (``records.read_records``:
threads, retries, atomic writes, unreadable assets reported per patch), so a killed run resumes;
the usable ones go into a tile store like any other source's tiles.  The siScore overlay fills
them back per granule (``maps.mosaic``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.patches import STATUS_CORRUPT, STATUS_OK
from siscore_assets.core.imagery.stac import warp
from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.records import read_band, read_records, scene_band
from siscore_assets.core.imagery.stac.remote import OpenedDatasets, Signer, gdal_env, with_retries
from siscore_assets.core.imagery.stac.search import Scene
from siscore_assets.core.imagery.stac.selection import SCL_CLOUD
from siscore_assets.core.storage import tile_store

INDEX_COLUMNS = [
    "tile_id",
    "granule_id",
    "item_id",
    "row",
    "col",
    "patch_px",
    "epsg",
    "left",
    "bottom",
    "right",
    "top",
    "lon",
    "lat",
    "status",
    "problem",
    "image_row",
]


@dataclass(frozen=True)
class PatchPlan:
    scene: Scene
    row: int
    col: int
    transform: tuple[float, ...]  # the granule's 10 m pixel grid (affine a, b, c, d, e, f)
    px: int

    @property
    def tile_id(self) -> str:
        return patch_id(self.scene.granule, self.row, self.col)

    @property
    def patch_transform(self) -> Affine:
        """The patch's own pixel grid: the granule's, shifted to the patch's corner."""
        return Affine(*self.transform[:6]) * Affine.translation(
            self.col * self.px, self.row * self.px
        )

    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the granule's UTM CRS (metres)."""
        t = self.patch_transform
        (x0, y0), (x1, y1) = t * (0, 0), t * (self.px, self.px)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def patch_id(granule: str, row: int, col: int) -> str:
    return f"{granule}/{row}/{col}"


def parse_patch_id(text: str) -> tuple[str, int, int]:
    """``granule/row/col`` -> (granule, row, col); anything else is a ``ValueError``."""
    parts = text.strip().split("/")
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(
            f"not a granule patch id: {text!r} (expected 'granule/row/col', e.g. '52SDG/3/17')"
        )
    return parts[0], int(parts[1]), int(parts[2])


def granule_grid(
    scene: Scene, cfg: StacSource, signer: Signer
) -> tuple[tuple[float, ...], int, int]:
    """(affine, width, height) of the scene's first band (the 10 m grid patches are cut from)."""
    band = cfg.bands[0]
    opened = OpenedDatasets(signer)

    def read() -> tuple[tuple[float, ...], int, int]:
        try:
            with gdal_env(cfg.timeout_s):
                ds = scene_band(opened, scene, band)
                return tuple(ds.transform)[:6], int(ds.width), int(ds.height)
        except Exception:
            opened.drop()  # the retry reopens past GDAL's cache of the failed request
            raise

    try:
        return with_retries(
            read,
            f"the pixel grid of {scene.item_id} ({band})",
            retries=cfg.retries,
            backoff_s=cfg.backoff_s,
        )
    finally:
        opened.drop(fresh=False)


def plan_patches(
    chosen: list[Scene],
    grids: dict[str, tuple[tuple[float, ...], int, int]],
    aoi: BaseGeometry,
    per_side: int,
    px: int,
) -> list[PatchPlan]:
    """Every whole patch of each chosen scene's granule that touches the AOI (lon/lat), sorted by
    granule, row, column.  Patches past the granule's edge (a small raster) are left out."""
    plans = []
    first: dict[str, Scene] = {}
    for scene in chosen:  # one scene per granule: the first given (a per-tile selection lists
        first.setdefault(scene.granule, scene)  # the scene clearest for most tiles first)
    for scene in sorted(first.values(), key=lambda s: (s.granule, s.item_id)):
        transform, width, height = grids[scene.item_id]
        crs = f"EPSG:{scene.epsg}"
        for row in range(min(per_side, height // px)):
            for col in range(min(per_side, width // px)):
                plan = PatchPlan(scene, row, col, transform, px)
                footprint = shape(transform_geom(crs, "EPSG:4326", mapping(box(*plan.bounds()))))
                if footprint.intersects(aoi):
                    plans.append(plan)
    return plans


def _read_on(src, plan: PatchPlan, resampling: str) -> np.ndarray:
    """One band of ``src`` on the patch's pixel grid (the granule's CRS; for the 10 m bands an
    exact window, for 20 m SCL a nearest upsampling)."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with WarpedVRT(
        src,
        crs=f"EPSG:{plan.scene.epsg}",
        transform=plan.patch_transform,
        width=plan.px,
        height=plan.px,
        src_nodata=0,
        nodata=0,
        resampling=Resampling[resampling],
    ) as vrt:
        return vrt.read(1)


def read_patch(plan: PatchPlan, cfg: StacSource, opened: OpenedDatasets) -> np.ndarray:
    """One patch record: (px, px, bands + 1) uint8, the last band a flag (0 no-data, 1 clear,
    1 + ``warp.CLOUD_BIT`` where SCL says cloud)."""
    scene, px = plan.scene, plan.px
    rec = np.zeros((px, px, len(cfg.bands) + 1), np.uint8)
    valid = np.ones((px, px), bool)

    def on_grid(src) -> np.ndarray:
        return _read_on(src, plan, "nearest")

    for i, band in enumerate(cfg.bands):
        v, ok = warp.stretch(read_band(opened, scene, band, on_grid), scene.offset, cfg.stretch_max)
        rec[..., i] = v
        valid &= ok
    cloud = (
        np.isin(read_band(opened, scene, "SCL", on_grid), SCL_CLOUD)
        if "SCL" in scene.hrefs
        else np.zeros((px, px), bool)
    )
    rec[..., -1] = np.where(valid, np.where(cloud, 1 | warp.CLOUD_BIT, 1), 0)
    rec[~valid, :-1] = 0
    return rec


def record_path(folder: Path, plan: PatchPlan) -> Path:
    return folder / f"{plan.scene.granule}_{plan.row}_{plan.col}.npy"


def cache_key(cfg: StacSource, chosen: list[Scene], per_side: int, px: int) -> str:
    """Digest of all a patch's pixels depend on, so a new selection never reuses old patches."""
    spec = {
        "tiles": warp.cache_key(cfg, chosen),
        "per_side": per_side,
        "px": px,
        "kind": "granule_patches",
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _assembled(
    plans: list[PatchPlan], folder: Path, max_cloud: float, failed: Mapping[Path, str]
) -> Iterator[tuple[dict, np.ndarray | None]]:
    """(index row, RGB or None) per planned patch, from its record: blank (mostly no data or no
    signal) and cloudy (SCL) patches reported with the reason and never stored; a patch whose
    scene would not read is corrupt, its reason naming the href."""
    for plan in plans:
        left, bottom, right, top = plan.bounds()
        lon, lat = shape(
            transform_geom(
                f"EPSG:{plan.scene.epsg}", "EPSG:4326", mapping(box(left, bottom, right, top))
            )
        ).centroid.coords[0]
        row = {
            "tile_id": plan.tile_id,
            "granule_id": plan.scene.granule,
            "item_id": plan.scene.item_id,
            "row": plan.row,
            "col": plan.col,
            "patch_px": plan.px,
            "epsg": plan.scene.epsg,
            "left": left,
            "bottom": bottom,
            "right": right,
            "top": top,
            "lon": lon,
            "lat": lat,
            "status": STATUS_OK,
            "problem": None,
            "image_row": -1,
        }
        path = record_path(folder, plan)
        if (why := failed.get(path)) is not None:
            row.update(status=STATUS_CORRUPT, problem=why)
            yield row, None
            continue
        rec = np.load(path)
        rgb, flag = np.ascontiguousarray(rec[..., :3]), rec[..., -1]
        status, problem = warp.record_status(rgb, flag, max_cloud, "patch")
        row.update(status=status, problem=problem)
        yield row, (rgb if row["status"] == STATUS_OK else None)


def read_granule_patches(
    cfg: StacSource,
    chosen: list[Scene],
    aoi: BaseGeometry,
    cache_root: Path,
    store_root: Path,
    *,
    max_cloud: float,
    store_px: int | None = None,
    signer: Signer | None = None,
) -> tuple[pd.DataFrame, tile_store.TileStore, dict[str, int]]:
    """Every AOI patch of the chosen scenes' granules (resuming from the cache) into a tile store
    under ``store_root``: (index, store, counts).  ``cfg.granule_patches`` must be set."""
    if cfg.granule_patches is None:
        raise ValueError("granule patching is off for this source (set source.granule_patches)")
    per_side, px = cfg.granule_patches
    key = cache_key(cfg, chosen, per_side, px)
    plan = warp.plan_digest([aoi.wkb_hex])  # the patches planned: the scenes' and the AOI's
    store_folder = warp.store_folder(store_root, "granules", key, plan, store_px, max_cloud)
    if (done := warp.committed_read(store_folder)) is not None:
        index, store = done  # the same scenes and settings, read and stored before: reused
        granules = index["granule_id"].nunique()
        return index, store, {"patches_read": 0, "patches_cached": len(index), "granules": granules}
    signer = signer or Signer(cfg.sign, cfg.resign_after_s)
    grids = {s.item_id: granule_grid(s, cfg, signer) for s in chosen}
    plans = plan_patches(chosen, grids, aoi, per_side, px)
    folder = cache_root / key
    done = read_records(
        plans,
        cfg,
        folder,
        lambda p: record_path(folder, p),
        read_patch,
        lambda p: f"patch {p.tile_id} from {p.scene.item_id}",
        signer,
    )
    rows, store = warp.store_images(
        _assembled(plans, folder, max_cloud, done.failed), store_folder, store_px=store_px
    )
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    index["image_row"] = index["image_row"].astype(np.int64)
    warp.keep_index(store, index)
    return (
        index,
        store,
        {
            "patches_read": done.read,
            "patches_cached": done.cached,
            "granules": len({p.scene.granule for p in plans}),
        },
    )


def granule_extent(rows: pd.DataFrame) -> tuple[tuple[float, float, float, float], int, int]:
    """((left, bottom, right, top), patches per side x, y) of the block a granule's patches span,
    from patch (0, 0) to the last row / column any of them has: the overlay's bounds."""
    first = rows.iloc[0]
    w, h = float(first["right"] - first["left"]), float(first["top"] - first["bottom"])
    left0 = float(first["left"]) - int(first["col"]) * w
    top0 = float(first["top"]) + int(first["row"]) * h
    nx, ny = int(rows["col"].max()) + 1, int(rows["row"].max()) + 1
    return (left0, top0 - ny * h, left0 + nx * w, top0), nx, ny
