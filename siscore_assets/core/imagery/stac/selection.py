"""Which Sentinel-2 scenes a country-year is read from, chosen by what the AOI sees.

Two ways (``scene_choice``):

* ``granule`` (default): per MGRS granule one scene, the clearest inside the AOI;
* ``tile``: per tile of the AOI (country zoom) its own clearest scene of the season (recorded),
  the next clearest filling its cloudy pixels — for monsoon countries where no single date is
  clear everywhere.

Clear means the scene classification (SCL) read inside the AOI (or the tile): the clear share is
the part with data (not SCL 0) that is not cloud (SCL 3 shadow, 8/9 cloud, 10 cirrus), and the
unusable share = 1 - clear share = 1 - (1 - no-data share) x (1 - cloud share among valid).  The
scene-level ``eo:cloud_cover`` only *orders* the candidates: per granule the scenes at or under
``max_scene_cloud`` come first, least cloudy first, then the cloudier ones.  The first
``scl_candidates`` under the limit have their SCL read; while the best leaves more than
``aoi_clear_enough`` of the AOI (every tile, in ``tile`` mode) unusable, the next
``scl_candidates`` of the order are read, up to ``scl_max_candidates`` per granule — so a
59.8 %-cloud granule whose AOI part is clear is found, and a clear year reads no more than before.
In ``tile`` mode a tile that no scene's footprint covers whole (on a swath's or a granule's edge:
no single scene ever leaves it clear) is also done once the scenes read clear over their own part
of it cover, to ``aoi_clear_enough``, all of it that any footprint holds (``footprints``).

The smallest unusable share (to 0.01) wins; ties go to the date closest to the season's centre,
then the lower scene cloud cover, then the item id (a rerun picks the same scene).  A granule none
of whose measured scenes has more than ``MIN_CLEAR_SHARE`` of the AOI clear is skipped and
recorded; the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from siscore_assets.core.imagery.grid import Tile
from siscore_assets.core.imagery.stac.config import StacSource
from siscore_assets.core.imagery.stac.footprints import covering, edge_points, tile_points
from siscore_assets.core.imagery.stac.remote import Signer, gdal_env, open_remote, with_retries
from siscore_assets.core.imagery.stac.search import Scene, days_from

SCL_NODATA = (0,)
SCL_CLOUD = (3, 8, 9, 10)  # cloud shadow, cloud medium / high probability, thin cirrus
SCL_READ_PX = 256  # longest side of the decimated SCL read used for ranking a granule
SCL_TILE_POINTS = 16  # per tile side: SCL sampled at 16 x 16 points of each tile (tile mode)
MIN_CLEAR_SHARE = 0.005  # a granule whose best scene leaves no more of the AOI clear is skipped

Shares = tuple[float, float]  # (cloud share among valid pixels, no-data share)
Measure = Callable[[Scene], "Shares | None"]
MeasureTiles = Callable[[Scene, list[Tile]], "dict[str, Shares] | None"]


def scl_shares(scl: np.ndarray, inside: np.ndarray) -> Shares:
    """(cloud share among valid pixels, no-data share) of an SCL array over the ``inside`` mask."""
    n = int(inside.sum())
    if n == 0:
        return 0.0, 1.0
    vals = scl[inside]
    nodata = np.isin(vals, SCL_NODATA)
    valid = int((~nodata).sum())
    cloud = float(np.isin(vals[~nodata], SCL_CLOUD).sum() / valid) if valid else 0.0
    return cloud, float(nodata.sum() / n)


def unusable(shares: Shares) -> float:
    """1 - clear share, to 0.01 (what candidates are ranked by): the share of the area without a
    clear pixel, so a scene with more clear pixels always ranks first (never over 1)."""
    return round(1.0 - clear_share(shares), 2)


def clear_share(shares: Shares) -> float:
    """Share of the area that is valid and not cloud."""
    return (1.0 - shares[1]) * (1.0 - shares[0])


def measure_scl(scene: Scene, aoi: BaseGeometry, cfg: StacSource, signer: Signer) -> Shares | None:
    """SCL cloud and no-data shares inside the AOI, from a decimated read; None without SCL."""
    if "SCL" not in scene.hrefs:
        return None
    import rasterio
    from rasterio.features import geometry_mask
    from rasterio.warp import transform_geom
    from rasterio.windows import from_bounds

    attempts = []

    def read() -> Shares:
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


def tile_shares(
    scl: np.ndarray, transform: Any, crs: Any, tiles: list[Tile], points: int = SCL_TILE_POINTS
) -> np.ndarray:
    """(tiles, 2) SCL (cloud, no-data) shares per tile, sampling ``scl`` (on ``transform`` in
    ``crs``) at ``points`` x ``points`` points of each tile; points off the raster are no-data."""
    from rasterio.warp import transform as warp_points

    if not tiles:
        return np.zeros((0, 2))
    xs, ys = tile_points(tiles, points)
    sx, sy = warp_points("EPSG:3857", crs, xs.ravel().tolist(), ys.ravel().tolist())
    cols, rows = ~transform * (np.asarray(sx), np.asarray(sy))
    cols, rows = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
    h, w = scl.shape
    on = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    vals = np.zeros(rows.shape, scl.dtype)  # off the raster: no-data (SCL 0)
    vals[on] = scl[rows[on], cols[on]]
    vals = vals.reshape(len(tiles), -1)
    nodata = np.isin(vals, SCL_NODATA)
    cloud = np.isin(vals, SCL_CLOUD) & ~nodata
    n_valid = (~nodata).sum(axis=1)
    cloud_share = np.where(n_valid > 0, cloud.sum(axis=1) / np.maximum(n_valid, 1), 0.0)
    return np.column_stack([cloud_share, nodata.mean(axis=1)])


def tile_width(tiles: list[Tile], crs: Any) -> float:
    """The narrowest tile's width in ``crs`` (metres in a UTM zone), along its top edge: a
    Web-Mercator tile spans 1 / cos(latitude) times more EPSG:3857 metres than ground, so its
    3857 width would overstate the source pixels it holds (fewer SCL samples at high latitude)."""
    from rasterio.warp import transform as warp_points

    b = np.array([t.bounds_3857() for t in tiles], dtype=float).reshape(-1, 4)
    xs, ys = warp_points("EPSG:3857", crs, [*b[:, 0], *b[:, 2]], [*b[:, 3], *b[:, 3]])
    n = len(tiles)
    dx, dy = np.subtract(xs[n:], xs[:n]), np.subtract(ys[n:], ys[:n])
    return float(np.hypot(dx, dy).min())


def measure_scl_tiles(
    scene: Scene, tiles: list[Tile], cfg: StacSource, signer: Signer
) -> dict[str, Shares] | None:
    """Per tile, SCL cloud and no-data shares from one decimated read of the window the tiles
    span (about ``SCL_TILE_POINTS`` pixels per tile side); None without SCL."""
    if "SCL" not in scene.hrefs or not tiles:
        return None if "SCL" not in scene.hrefs else {}
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    lefts, bottoms, rights, tops = zip(*(t.bounds_3857() for t in tiles))
    span = (min(lefts), min(bottoms), max(rights), max(tops))
    attempts = []
    widths: dict[str, float] = {}  # per CRS the tiles' narrowest width: once, not per attempt

    def read() -> dict[str, Shares]:
        attempts.append(1)
        with (
            gdal_env(cfg.timeout_s),
            open_remote(signer.href(scene.hrefs["SCL"]), fresh=len(attempts) > 1) as src,
        ):
            gl, gb, gr, gt = transform_bounds("EPSG:3857", src.crs, *span, densify_pts=21)
            sl, sb, sr, st = src.bounds
            left, bottom, right, top = max(gl, sl), max(gb, sb), min(gr, sr), min(gt, st)
            if left >= right or bottom >= top:
                return {t.tile_id: (0.0, 1.0) for t in tiles}
            win = (
                from_bounds(left, bottom, right, top, src.transform).round_offsets().round_lengths()
            )
            crs = src.crs.to_string()
            if crs not in widths:
                widths[crs] = tile_width(tiles, src.crs)
            native_per_tile = widths[crs] / abs(src.transform.a)
            scale = max(1.0, native_per_tile / SCL_TILE_POINTS)
            shape_ = (max(1, int(win.height / scale)), max(1, int(win.width / scale)))
            scl = src.read(1, window=win, out_shape=shape_)
            tf = src.window_transform(win) @ rasterio.Affine.scale(
                win.width / shape_[1], win.height / shape_[0]
            )
            shares = tile_shares(scl, tf, src.crs, tiles)
            return {t.tile_id: (float(c), float(n)) for t, (c, n) in zip(tiles, shares)}

    return with_retries(
        read,
        f"SCL of {scene.item_id} per tile ({scene.hrefs['SCL']})",
        retries=cfg.retries,
        backoff_s=cfg.backoff_s,
    )


def candidate_queues(scenes: list[Scene], cfg: StacSource) -> dict[str, list[Scene]]:
    """Per granule, the scenes that may be measured, in measuring order: at or under
    ``max_scene_cloud`` first, each part least scene cloud first; at most
    ``max(scl_candidates, scl_max_candidates)``."""
    cap = max(cfg.scl_candidates, cfg.scl_max_candidates)
    by_granule: dict[str, list[Scene]] = {}
    for s in scenes:
        by_granule.setdefault(s.granule, []).append(s)
    return {
        g: sorted(group, key=lambda s: (s.cloud > cfg.max_scene_cloud, s.cloud, s.date, s.item_id))[
            :cap
        ]
        for g, group in sorted(by_granule.items())
    }


def measure_until_clear(
    queues: Mapping[str, list[Scene]],
    cfg: StacSource,
    measure: Callable[[Scene], Any],
    clear: Callable[[str, dict[str, Any]], bool],
) -> dict[str, Any]:
    """``{item id: measure(scene)}`` over rounds: first each granule's under-limit scenes among
    its first ``scl_candidates``, then, for every granule ``clear`` says is not clear yet, the
    next ``scl_candidates`` of its queue, until all are clear or their queues are spent."""
    measured: dict[str, Any] = {}
    taken: dict[str, int] = {}
    batch: list[Scene] = []
    for g, queue in queues.items():
        first = [s for s in queue[: cfg.scl_candidates] if s.cloud <= cfg.max_scene_cloud]
        taken[g] = len(first)
        batch += first
    with ThreadPoolExecutor(max_workers=cfg.threads) as pool:
        while True:
            measured.update(zip([s.item_id for s in batch], pool.map(measure, batch)))
            batch = []
            for g, queue in queues.items():
                if taken[g] < len(queue) and not clear(g, measured):
                    nxt = queue[taken[g] : taken[g] + cfg.scl_candidates]
                    taken[g] += len(nxt)
                    batch += nxt
            if not batch:
                return measured


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


def _shares_of(scene: Scene, measured: Shares | None) -> Shares:
    """Measured SCL shares, or the scene-level figure for a scene without SCL."""
    return measured if measured is not None else (scene.cloud / 100.0, 0.0)


def _rank_key(scene: Scene, shares: Shares, centre) -> tuple:
    return (unusable(shares), days_from(scene.date, centre), scene.cloud, scene.item_id)


def _unmeasured_row(s: Scene, cfg: StacSource, centre, in_queue: bool, n_read: int) -> dict:
    """A scene whose SCL was not read: not needed (those read before it leave the AOI clear
    enough) or past ``scl_max_candidates``."""
    why = (
        f"not needed: the {n_read} scene(s) read before it leave the AOI clear enough "
        f"(aoi_clear_enough {cfg.aoi_clear_enough:.2f})"
        if in_queue
        else f"not read: scl_max_candidates {cfg.scl_max_candidates} scenes of its granule first"
    )
    if s.cloud > cfg.max_scene_cloud:
        reason = f"scene cloud cover {s.cloud:.1f}% > limit {cfg.max_scene_cloud:.1f}%; {why}"
        return _row(s, centre, status="rejected", reason=reason)
    return _row(s, centre, status="not measured", reason=why)


def _ranked_rows(ranked: list[tuple], centre, cfg: StacSource, skipped: bool) -> list[dict]:
    """Rows of a granule's measured scenes, best first (``ranked``: (key, scene, shares))."""
    rows = []
    best_key = ranked[0][0]
    for rank, (key, s, (cloud, nodata)) in enumerate(ranked, start=1):
        over = (
            f"; scene cloud cover {s.cloud:.1f}% is over the limit {cfg.max_scene_cloud:.1f}% "
            "but the AOI's part is what counts"
            if s.cloud > cfg.max_scene_cloud
            else ""
        )
        if skipped:
            status = "rejected"
            reason = (
                f"clear share of the AOI {clear_share((cloud, nodata)):.3f} (SCL cloud {cloud:.2f} "
                f"among valid, no-data {nodata:.2f})"
            )
        elif rank == 1:
            status = "chosen"
            reason = (
                f"least unusable share inside the AOI ({key[0]:.2f} = 1 - (1 - no-data "
                f"{nodata:.2f}) x (1 - SCL cloud {cloud:.2f})){over}"
            )
        elif key[0] > best_key[0]:
            status, reason = "runner-up", f"unusable share {key[0]:.2f} > chosen {best_key[0]:.2f}"
        elif key[1] > best_key[1]:
            status = "runner-up"
            reason = (
                f"tie on unusable share {key[0]:.2f}; {key[1]} days from the season centre "
                f"vs {best_key[1]}"
            )
        else:
            status = "runner-up"
            reason = "tie on unusable share and date; lower scene cloud / item id chosen"
        rows.append(
            _row(
                s,
                centre,
                scl_cloud_share=cloud,
                scl_nodata_share=nodata,
                unusable_share=key[0],
                rank=rank,
                chosen=rank == 1 and not skipped,
                status=status,
                reason=reason,
            )
        )
    return rows


def select_scenes(
    scenes: list[Scene],
    cfg: StacSource,
    year: int,
    measure: Measure,
) -> tuple[list[dict], list[Scene], list[str]]:
    """(a row per scene with status and reason, the chosen scene per granule, skipped granules)."""
    centre = cfg.season_centre(year)
    queues = candidate_queues(scenes, cfg)
    by_item = {s.item_id: s for s in scenes}

    def best_of(g: str, measured: dict) -> float | None:
        got = [
            unusable(_shares_of(s, measured[s.item_id])) for s in queues[g] if s.item_id in measured
        ]
        return min(got) if got else None

    def clear(g: str, measured: dict) -> bool:
        best = best_of(g, measured)
        return best is not None and best <= cfg.aoi_clear_enough

    measured = measure_until_clear(queues, cfg, measure, clear)
    rows: list[dict] = []
    chosen: list[Scene] = []
    skipped: list[str] = []
    for granule in sorted({s.granule for s in scenes}):
        group = sorted(
            (s for s in scenes if s.granule == granule), key=lambda s: (s.date, s.item_id)
        )
        ranked = sorted(
            (
                (
                    _rank_key(by_item[i], _shares_of(by_item[i], m), centre),
                    by_item[i],
                    _shares_of(by_item[i], m),
                )
                for i, m in measured.items()
                if by_item[i].granule == granule
            ),
            key=lambda r: r[0],
        )
        best = max((clear_share(r[2]) for r in ranked), default=0.0)
        is_skipped = best <= MIN_CLEAR_SHARE
        if is_skipped:
            least = min(s.cloud for s in group)
            over = all(s.cloud > cfg.max_scene_cloud for s in group)
            skipped.append(
                f"granule {granule}: "
                + (
                    f"every one of its {len(group)} scene(s) is cloudier than "
                    f"{cfg.max_scene_cloud:.1f}% (least {least:.1f}%), and "
                    if over
                    else ""
                )
                + f"none of the {len(ranked)} measured has over {MIN_CLEAR_SHARE:.1%} of the AOI "
                f"clear (best {best:.1%})"
            )
        rows += _ranked_rows(ranked, centre, cfg, is_skipped) if ranked else []
        if not is_skipped:
            chosen.append(ranked[0][1])
        done = {r[1].item_id for r in ranked}
        queued = {q.item_id for q in queues[granule]}
        rows += [
            _unmeasured_row(s, cfg, centre, s.item_id in queued, len(done))
            for s in group
            if s.item_id not in done
        ]
    return rows, chosen, skipped


TILE_COLUMNS = [
    "tile_id",
    "item_id",
    "granule_id",
    "date",
    "scl_cloud_share",
    "scl_nodata_share",
    "unusable_share",
    "candidates",
    "mosaic",
]


@dataclass(frozen=True)
class TileChoice:
    """Per-tile selection: the scenes' rows, every scene some tile uses, the mosaic order per
    tile (its clearest scene first), the per-tile record and what was skipped."""

    rows: list[dict]
    chosen: list[Scene]
    order: dict[str, tuple[str, ...]]  # tile id -> item ids, clearest first
    tiles: list[dict]  # one row per tile (``TILE_COLUMNS``)
    skipped: list[str]


def select_tiles(
    scenes: list[Scene],
    tiles: list[Tile],
    cfg: StacSource,
    year: int,
    measure_tiles: MeasureTiles,
) -> TileChoice:
    """Per tile the clearest valid scene of the season (then up to ``scl_candidates - 1`` next
    clearest to fill its cloudy pixels), measured per tile; a granule's further scenes are read
    while one of its tiles has no scene leaving it at most ``aoi_clear_enough`` unusable, or, for
    a tile no footprint covers whole, while more than that share of it lies in some footprint
    but in none of a scene read clear over its own part (``footprints.edge_points``)."""
    centre = cfg.season_centre(year)
    queues = candidate_queues(scenes, cfg)
    cover_scenes = [s for q in queues.values() for s in q]
    cover = covering(cover_scenes, tiles)
    by_item = {s.item_id: s for s in scenes}
    granule_tiles = {
        g: sorted({t.tile_id for s in q for t in cover[s.item_id]}) for g, q in queues.items()
    }
    covered_by: dict[str, list[str]] = {}
    for item, ts in cover.items():
        for t in ts:
            covered_by.setdefault(t.tile_id, []).append(item)

    def shares(item: str, measured: dict, tile_id: str) -> Shares:
        got = measured[item]
        return got[tile_id] if got is not None else (by_item[item].cloud / 100.0, 0.0)

    best: dict[str, float] = {}  # tile id -> least unusable share measured so far
    seen: set[str] = set()
    # tiles no footprint covers whole: per scene the sample points its footprint holds; the
    # points some footprint holds, and those of scenes read clear over their part of the tile
    edges = edge_points(cover_scenes, cover, SCL_TILE_POINTS)
    needed = {tid: np.logical_or.reduce(list(held.values())) for tid, held in edges.items()}
    cleared = {tid: np.zeros_like(n) for tid, n in needed.items()}

    def done(tid: str) -> bool:
        if best.get(tid, 2.0) <= cfg.aoi_clear_enough:
            return True
        left = round(float((needed[tid] & ~cleared[tid]).mean()), 2) if tid in needed else 2.0
        return left <= cfg.aoi_clear_enough

    def clear(g: str, measured: dict) -> bool:
        for item in [i for i in measured if i not in seen]:
            seen.add(item)
            for t in cover[item]:
                got = shares(item, measured, t.tile_id)
                best[t.tile_id] = min(unusable(got), best.get(t.tile_id, 2.0))
                held = edges.get(t.tile_id, {}).get(item)
                if held is not None and (
                    round(float(held.mean()) - clear_share(got), 2) <= cfg.aoi_clear_enough
                ):
                    cleared[t.tile_id] |= held
        return all(done(t) for t in granule_tiles[g])

    measured = measure_until_clear(queues, cfg, lambda s: measure_tiles(s, cover[s.item_id]), clear)
    order: dict[str, tuple[str, ...]] = {}
    tile_rows: list[dict] = []
    uses: dict[str, int] = {}
    no_scene: list[str] = []
    for t in tiles:
        tid = t.tile_id
        ranked = sorted(
            (_rank_key(by_item[i], shares(i, measured, tid), centre), i, shares(i, measured, tid))
            for i in covered_by.get(tid, [])
            if i in measured
        )
        if not ranked:
            no_scene.append(tid)
            continue
        key, item, (cloud, nodata) = ranked[0]
        order[tid] = tuple(r[1] for r in ranked[: cfg.scl_candidates])
        uses[item] = uses.get(item, 0) + 1
        tile_rows.append(
            {
                "tile_id": tid,
                "item_id": item,
                "granule_id": by_item[item].granule,
                "date": by_item[item].date,
                "scl_cloud_share": cloud,
                "scl_nodata_share": nodata,
                "unusable_share": key[0],
                "candidates": len(ranked),
                "mosaic": len(order[tid]),
            }
        )
    in_mosaic = {i for items in order.values() for i in items}
    rows = []
    for s in sorted(scenes, key=lambda s: (s.granule, s.date, s.item_id)):
        if s.item_id not in measured:
            # the scenes read over its tiles (another granule's may have cleared them)
            read = len(
                {i for t in cover.get(s.item_id, []) for i in covered_by[t.tile_id]}
                & measured.keys()
            )
            rows.append(_unmeasured_row(s, cfg, centre, s.item_id in cover, read))
            continue
        got = [shares(s.item_id, measured, t.tile_id) for t in cover.get(s.item_id, [])]
        mean = tuple(np.mean(got, axis=0)) if got else (0.0, 1.0)
        n = uses.get(s.item_id, 0)
        status = "chosen" if n else ("fill" if s.item_id in in_mosaic else "runner-up")
        reason = (
            f"clearest scene of {n} of its {len(got)} tile(s)"
            if n
            else (
                f"fills cloudy pixels of tiles whose clearest scene is another ({len(got)} tiles)"
                if status == "fill"
                else f"no tile's clearest {cfg.scl_candidates} ({len(got)} tiles measured)"
            )
        )
        rows.append(
            _row(
                s,
                centre,
                scl_cloud_share=float(mean[0]),
                scl_nodata_share=float(mean[1]),
                unusable_share=unusable(mean),
                rank=0,
                chosen=bool(n),
                status=status,
                reason=reason,
            )
        )
    skipped = (
        [f"{len(no_scene)} tile(s) with no measured scene covering them (first {no_scene[0]})"]
        if no_scene
        else []
    )
    # per granule the scene clearest for most tiles first (granule patches cut that one)
    chosen = sorted(
        (by_item[i] for i in in_mosaic),
        key=lambda s: (s.granule, -uses.get(s.item_id, 0), s.item_id),
    )
    return TileChoice(rows, chosen, order, tile_rows, skipped)
