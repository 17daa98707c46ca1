"""Per MGRS granule, the best scene of the year, with the runners-up and why each lost.

The rule, in order:

1. a scene whose ``eo:cloud_cover`` is above ``max_scene_cloud`` is rejected;
2. of the rest, the ``scl_candidates`` least cloudy (scene cloud cover) have their scene
   classification (SCL) read inside the AOI: unusable share = cloud (SCL 3 shadow, 8/9 cloud,
   10 cirrus) among valid pixels + no-data (SCL 0) share;
3. the smallest unusable share (to 0.01) wins; ties go to the date closest to the season's
   centre, then the lower scene cloud cover, then the item id (so a rerun picks the same scene).

A granule whose every scene is rejected is skipped and recorded; the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.remote import Signer, gdal_env, open_remote, with_retries
from siscore_assets.core.imagery.stac.search import Scene, days_from

SCL_NODATA = (0,)
SCL_CLOUD = (3, 8, 9, 10)  # cloud shadow, cloud medium / high probability, thin cirrus
SCL_READ_PX = 256  # longest side of the decimated SCL read used for ranking

Measure = Callable[[Scene], "tuple[float, float] | None"]


def scl_shares(scl: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """(cloud share among valid pixels, no-data share) of an SCL array over the ``inside`` mask."""
    n = int(inside.sum())
    if n == 0:
        return 0.0, 1.0
    vals = scl[inside]
    nodata = np.isin(vals, SCL_NODATA)
    valid = int((~nodata).sum())
    cloud = float(np.isin(vals[~nodata], SCL_CLOUD).sum() / valid) if valid else 0.0
    return cloud, float(nodata.sum() / n)


def measure_scl(
    scene: Scene, aoi: BaseGeometry, cfg: StacSource, signer: Signer
) -> tuple[float, float] | None:
    """SCL cloud and no-data shares inside the AOI, from a decimated read; None without SCL."""
    if "SCL" not in scene.hrefs:
        return None
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.warp import transform_geom
    from rasterio.windows import from_bounds

    attempts = []

    def read() -> tuple[float, float]:
        attempts.append(1)
        with (
            gdal_env(cfg.timeout_s),
            open_remote(signer.href(scene.hrefs["SCL"]), fresh=len(attempts) > 1) as src,
        ):
            geom = transform_geom("EPSG:4326", src.crs, mapping(aoi))
            gl, gb, gr, gt = rasterio.features.bounds(geom)
            sl, sb, sr, st = src.bounds
            left, bottom, right, top = max(gl, sl), max(gb, sb), min(gr, sr), min(gt, st)
            if left >= right or bottom >= top:
                return 0.0, 1.0
            win = (
                from_bounds(left, bottom, right, top, src.transform).round_offsets().round_lengths()
            )
            scale = max(1.0, max(win.width, win.height) / SCL_READ_PX)
            shape_ = (max(1, int(win.height / scale)), max(1, int(win.width / scale)))
            scl = src.read(1, window=win, out_shape=shape_)
            tf = src.window_transform(win) @ rasterio.Affine.scale(
                win.width / shape_[1], win.height / shape_[0]
            )
            inside = geometry_mask(
                [geom], out_shape=shape_, transform=tf, invert=True, all_touched=True
            )
            return scl_shares(scl, inside)

    return with_retries(
        read,
        f"SCL of {scene.item_id} ({scene.hrefs['SCL']})",
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
    )


def _row(scene: Scene, centre, **kw) -> dict:
    return {
        "granule_id": scene.granule,
        "item_id": scene.item_id,
        "date": scene.date,
        "scene_cloud_pct": scene.cloud,
        "scl_cloud_share": np.nan,
        "scl_nodata_share": np.nan,
        "unusable_share": np.nan,
        "days_from_centre": days_from(scene.date, centre),
        "processing_baseline": scene.baseline,
        "harmonise_offset": scene.offset,
        "epsg": scene.epsg,
        "rank": 0,
        "chosen": False,
        **kw,
    }


def select_scenes(
    scenes: list[Scene],
    cfg: StacSource,
    year: int,
    measure: Measure,
) -> tuple[list[dict], list[Scene], list[str]]:
    """(a row per scene with status and reason, the chosen scene per granule, skipped granules)."""
    centre = cfg.season_centre(year)
    by_granule: dict[str, list[Scene]] = {}
    for s in scenes:
        by_granule.setdefault(s.granule, []).append(s)
    to_measure: list[Scene] = []
    for group in by_granule.values():
        ok = sorted(
            (s for s in group if s.cloud <= cfg.max_scene_cloud),
            key=lambda s: (s.cloud, s.date, s.item_id),
        )
        to_measure.extend(ok[: cfg.scl_candidates])
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        measured = dict(zip([s.item_id for s in to_measure], pool.map(measure, to_measure)))
    rows: list[dict] = []
    chosen: list[Scene] = []
    skipped: list[str] = []
    for granule in sorted(by_granule):
        group = by_granule[granule]
        rejected = [s for s in group if s.cloud > cfg.max_scene_cloud]
        for s in sorted(rejected, key=lambda s: (s.date, s.item_id)):
            rows.append(
                _row(
                    s,
                    centre,
                    status="rejected",
                    reason=f"scene cloud cover {s.cloud:.1f}% > limit {cfg.max_scene_cloud:.1f}%",
                )
            )
        ok = sorted(
            (s for s in group if s.cloud <= cfg.max_scene_cloud),
            key=lambda s: (s.cloud, s.date, s.item_id),
        )
        if not ok:
            skipped.append(
                f"granule {granule}: every one of its {len(group)} scene(s) is cloudier than "
                f"{cfg.max_scene_cloud:.1f}% (least {min(s.cloud for s in group):.1f}%)"
            )
            continue
        ranked = []
        for s in ok[: cfg.scl_candidates]:
            shares = measured[s.item_id]
            cloud, nodata = shares if shares is not None else (s.cloud / 100.0, 0.0)
            ranked.append(
                (
                    round(cloud + nodata, 2),
                    days_from(s.date, centre),
                    s.cloud,
                    s.item_id,
                    s,
                    cloud,
                    nodata,
                )
            )
        ranked.sort(key=lambda r: r[:4])
        best = ranked[0]
        for rank, (unusable, days, _, _, s, cloud, nodata) in enumerate(ranked, start=1):
            if rank == 1:
                reason = (
                    f"least unusable share inside the AOI ({unusable:.2f} = "
                    f"SCL cloud {cloud:.2f} + no-data {nodata:.2f})"
                )
                status = "chosen"
            elif unusable > best[0]:
                reason, status = (
                    f"unusable share {unusable:.2f} > chosen {best[0]:.2f}",
                    "runner-up",
                )
            elif days > best[1]:
                reason, status = (
                    (
                        f"tie on unusable share {unusable:.2f}; {days} days from the season centre "
                        f"vs {best[1]}"
                    ),
                    "runner-up",
                )
            else:
                reason, status = (
                    "tie on unusable share and date; lower scene cloud / item id chosen",
                    "runner-up",
                )
            rows.append(
                _row(
                    s,
                    centre,
                    scl_cloud_share=cloud,
                    scl_nodata_share=nodata,
                    unusable_share=unusable,
                    rank=rank,
                    chosen=rank == 1,
                    status=status,
                    reason=reason,
                )
            )
        chosen.append(best[4])
        for s in ok[cfg.scl_candidates :]:
            rows.append(
                _row(
                    s,
                    centre,
                    status="not measured",
                    reason=f"{cfg.scl_candidates} scene(s) with less cloud cover were ranked first",
                )
            )
    return rows, chosen, skipped
