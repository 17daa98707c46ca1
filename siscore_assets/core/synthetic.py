"""The embedded synthetic country ``SYN``: a deterministic, offline stand-in for real imagery.

Why it exists: the whole pipeline (tiling, clustering, POGs, scorer, validation, regression)
must run end to end in minutes without network access, and the validation stage needs ground
truth that real countries lack.  ``SYN`` gives both: a latent development field (capital,
provincial and county seats, road corridors, growing economic development zones, villages on
farmland, empty mountains, forests and water), a tile renderer that makes that development
*visible* (building density, road grid, paved ground), and per-tile truth (floor area,
population, nightlights) computed from the very same built fraction the renderer draws.

Everything is a pure function of :class:`SyntheticSpec`; randomness is keyed per tile
(``seed, stream, x, y``), so a tile looks the same whatever block it is rendered in, and the
same place in different years keeps its land cover and layout — growth only adds buildings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint, Point, box

from siscore_assets.core.grid import Tile, block_bounds_3857, tiles_in_block

# ---------------------------------------------------------------------------------------------
# Constants other modules may rely on
# ---------------------------------------------------------------------------------------------
WATER, FOREST, MOUNTAIN, SETTLED = 0, 1, 2, 3
LAND_COVER_NAMES = {WATER: "water", FOREST: "forest", MOUNTAIN: "bare_mountain", SETTLED: "settled"}
URBAN_THRESHOLD = 0.40  # development at or above which a tile counts as urban
NIGHTLIGHT_THRESHOLD = 0.30  # below this development, nightlight is exactly 0 (VIIRS floor)
NIGHTLIGHT_MAX = 63.0  # saturation radiance, nW/cm2/sr
EDZ_RADIUS_KM = 3.0  # a tile is "in" an EDZ when its centre is this close to the zone centre
NEAR_MINE_KM = 5.0
EDZ_TYPES = ("industrial", "tourism", "agricultural")
POI_KINDS = ("capital", "provincial_hub", "county_hub", "mine", "nuclear_site", "edz")
PRETRAIN_CLASSES = ("urban", "rural", "uninhabited")
ANNOTATOR_ROLES = ("eco", "sat", "loc")  # economist, satellite analyst, local expert

_EARTH_CIRCUMFERENCE_M = 40075016.685578488
_TARGET_SETTLED = 0.37  # share of tiles that are inhabited (settled land)
_CLOUD_LEVEL = 0.42  # cloud noise threshold: a few % of tiles carry cloud in a given year
_M2_PER_PERSON = 60.0  # gross floor area (homes, work, services) per resident


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the synthetic country; same spec -> byte-identical outputs."""

    seed: int = 7
    z: int = 14
    x0: int = 13903  # ~125.5E
    y0: int = 6163  # ~40.3N
    nx: int = 40
    ny: int = 40
    tile_px: int = 64  # 64..128
    years: tuple[int, ...] = (2016, 2017, 2018, 2019)
    n_districts: int = 12
    n_provinces: int = 3
    n_annotators: int = 8

    def __post_init__(self) -> None:
        if not 32 <= self.tile_px <= 256:
            raise ValueError(f"tile_px must be in 32..256, got {self.tile_px}")
        if self.nx < 4 or self.ny < 4:
            raise ValueError("the synthetic country needs at least 4x4 tiles")
        if not self.years or list(self.years) != sorted(set(self.years)):
            raise ValueError("years must be a non-empty, strictly increasing tuple")
        if not 1 <= self.n_provinces <= self.n_districts <= self.nx * self.ny // 4:
            raise ValueError("need 1 <= n_provinces <= n_districts <= tiles/4")
        if self.n_annotators < 2:
            raise ValueError("need at least 2 annotators (one of them is careless)")


# ---------------------------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise (zero mean, unit std); padded so edges don't wrap."""
    ph, pw = shape[0] * 2, shape[1] * 2
    w = rng.standard_normal((ph, pw))
    fy = np.fft.fftfreq(ph)[:, None]
    fx = np.fft.rfftfreq(pw)[None, :]
    filt = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(w) * filt, s=(ph, pw))[: shape[0], : shape[1]]
    out = out - out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def _seg_dist(
    px: np.ndarray, py: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    """Distance from points to the segment a-b (same units)."""
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    ll = dx * dx + dy * dy
    t = np.zeros_like(px) if ll == 0 else np.clip(((px - ax) * dx + (py - ay) * dy) / ll, 0, 1)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _upsample_matrix(n_low: int, n_high: int) -> np.ndarray:
    """Smooth-step interpolation matrix (n_high, n_low) from a lattice spanning the tile to its
    pixel centres; the lattice's end points sit on the tile edges, so shared edge values give
    seamless textures between neighbouring tiles."""
    pos = (np.arange(n_high) + 0.5) / n_high * (n_low - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_low - 2)
    t = pos - i0
    t = t * t * (3 - 2 * t)
    m = np.zeros((n_high, n_low), dtype=np.float32)
    m[np.arange(n_high), i0] = 1 - t
    m[np.arange(n_high), i0 + 1] = t
    return m


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_F1 = np.uint64(0xBF58476D1CE4E5B9)
_F2 = np.uint64(0x94D049BB133111EB)


def _hash01(seed: int, stream: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) from integer lattice coordinates (splitmix64): noise keyed by *global*
    position, so textures continue across tile edges and don't depend on the rendered block."""
    k = np.array([(int(seed) * 1_000_003 + int(stream) * 7919) % 2**63], dtype=np.uint64)
    h = (np.asarray(a, dtype=np.int64).view(np.uint64) * _M1) ^ (
        np.asarray(b, dtype=np.int64).view(np.uint64) * _M2
    )
    h = h ^ (k * _M3)
    h ^= h >> np.uint64(30)
    h *= _F1
    h ^= h >> np.uint64(27)
    h *= _F2
    h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def built_fraction(development: np.ndarray) -> np.ndarray:
    """Share of a tile's building lots that carry a building, from latent development.

    Shared by the renderer and the truth table, so floor area is faithful to what is visible.
    """
    d = np.clip(np.asarray(development, dtype=np.float64), 0.0, 1.0)
    return np.where(d > 0, np.clip(0.01 + 0.95 * d**1.25, 0.0, 1.0), 0.0)


def floors_for(built: np.ndarray) -> np.ndarray:
    """Mean storeys: one in villages, high-rise where dense."""
    return 1.0 + 5.0 * np.asarray(built, dtype=np.float64) ** 2


_SYLLABLES = (
    "han", "song", "ryong", "chon", "pyong", "sam", "kang", "un", "tae", "myo", "hyang", "sin",
    "ok", "rak", "chang", "po", "dok", "mun", "nam", "buk", "san", "hwa", "sol", "jin", "gum",
    "ryu", "bong", "hae", "yang", "dan",
)  # fmt: skip


def _names(rng: np.random.Generator, n: int) -> list[str]:
    """Readable, unique two-syllable place names."""
    out: list[str] = []
    while len(out) < n:
        a, b = rng.choice(len(_SYLLABLES), 2, replace=False)
        name = (_SYLLABLES[a] + _SYLLABLES[b]).capitalize()
        if name not in out:
            out.append(name)
    return out


# ---------------------------------------------------------------------------------------------
# The tile renderer (shared by the country mosaic and the pretraining set)
# ---------------------------------------------------------------------------------------------
_ROOFS = np.array(
    [
        [196, 194, 188],
        [228, 226, 218],
        [172, 82, 64],
        [150, 150, 152],
        [96, 118, 160],
        [210, 200, 170],
    ],
    dtype=np.float32,
)
_ROOF_CUM = np.cumsum([0.3, 0.2, 0.2, 0.15, 0.08])  # grey, white, red, dark, blue, beige
_FIELDS = np.array(
    [[82, 118, 52], [104, 132, 62], [146, 136, 86], [122, 100, 70], [70, 104, 66], [128, 140, 74]],
    dtype=np.float32,
)
_PAVED = np.array([150, 144, 134], dtype=np.float32)
_ROAD = np.array([182, 178, 170], dtype=np.float32)
_TRACK = np.array([160, 140, 108], dtype=np.float32)
_HIGHWAY = np.array([200, 196, 186], dtype=np.float32)
_FOREST = np.array([36, 70, 40], dtype=np.float32)
_WATER = np.array([28, 50, 86], dtype=np.float32)
_MOUNTAIN = np.array([[140, 122, 90], [120, 119, 112], [140, 122, 92]], dtype=np.float32)
_CLOUD = np.array([238, 238, 240], dtype=np.float32)


@dataclass
class _Lots:
    """Year-independent building layout of a batch of tiles (lots on a G x G grid)."""

    rank: np.ndarray  # (n, G, G) fill order: lot with rank r is built when r < k
    big: np.ndarray  # (n, G, G) threshold: lot's building fills the lot when built > big
    bh: np.ndarray
    bw: np.ndarray
    oy: np.ndarray
    ox: np.ndarray
    roof: np.ndarray
    shade: np.ndarray
    track_row: np.ndarray  # (n,) pixel row of the village track


class TileRenderer:
    """Renders tiles from (land cover, built fraction, year); deterministic per tile key.

    Building lots, roofs and textures are drawn from a per-tile RNG keyed by the tile's (x, y),
    so the same tile in two years is the same place; the first ``k`` lots in a fixed order are
    built, ``k`` following the built fraction, so growth adds buildings instead of reshuffling.
    """

    def __init__(self, seed: int, tile_px: int) -> None:
        self.seed = int(seed)
        self.P = int(tile_px)
        self.L = max(4, self.P // 16)  # lot size (px)
        self.G = math.ceil(self.P / self.L)  # lots per side
        self.Q = max(8, self.P // 8)  # farm parcel size (px)
        self.GQ = math.ceil(self.P / self.Q)
        r = np.arange(self.P)
        self._lot = np.minimum(r // self.L, self.G - 1)
        self._off = r - self._lot * self.L
        self._umats: dict[int, np.ndarray] = {}

    # -- per-tile random draws ------------------------------------------------------------
    def lots(self, keys: np.ndarray) -> _Lots:
        G, L, n = self.G, self.L, len(keys)
        rank = np.empty((n, G, G), np.int32)
        big = np.empty((n, G, G), np.float32)
        bh = np.empty((n, G, G), np.int16)
        bw = np.empty_like(bh)
        oy = np.empty_like(bh)
        ox = np.empty_like(bh)
        roof = np.empty((n, G, G), np.int8)
        shade = np.empty((n, G, G), np.float32)
        track = np.empty(n, np.int32)
        gy, gx = np.mgrid[0:G, 0:G] + 0.5
        for t, (kx, ky) in enumerate(keys):
            rng = np.random.default_rng([self.seed, 11, int(kx), int(ky)])
            u = rng.random((G, G))
            centres = rng.uniform(0.12, 0.88, (int(rng.integers(1, 4)), 2)) * G
            cy = centres[0, 0]
            dist = np.min([np.hypot(gy - a, gx - b) for a, b in centres], axis=0) / (0.75 * G)
            score = 0.45 * u + 0.55 * dist  # villages cluster around a centre, cities fill it all
            rank[t] = np.argsort(np.argsort(score, axis=None), kind="stable").reshape(G, G)
            big[t] = 0.35 + 0.6 * rng.random((G, G))
            h = rng.integers(2, L, (G, G))
            w = rng.integers(2, L, (G, G))
            bh[t], bw[t] = h, w
            oy[t] = rng.integers(1, L - h + 1)
            ox[t] = rng.integers(1, L - w + 1)
            roof[t] = np.searchsorted(_ROOF_CUM, rng.random((G, G)), side="right")
            shade[t] = rng.uniform(0.85, 1.1, (G, G))
            track[t] = int(round(cy)) * L
        return _Lots(rank, big, bh, bw, oy, ox, roof, shade, track)

    def _expand(self, a: np.ndarray) -> np.ndarray:
        """(n, G, G) lot values -> (n, P, P) pixel values."""
        return np.take(np.take(a, self._lot, axis=1), self._lot, axis=2)

    def building_mask(self, lots: _Lots, built: np.ndarray) -> np.ndarray:
        """(n, P, P) bool: pixels covered by a building at these built fractions."""
        G, L = self.G, self.L
        b = np.asarray(built, dtype=np.float64)
        k = np.round(b * G * G).astype(np.int32)
        on = lots.rank < k[:, None, None]
        full = b[:, None, None] > lots.big
        bh = np.where(full, L - 1, lots.bh)
        bw = np.where(full, L - 1, lots.bw)
        oy = np.where(full, 1, lots.oy)
        ox = np.where(full, 1, lots.ox)
        offr = self._off[None, :, None]
        offc = self._off[None, None, :]
        oyp, bhp = self._expand(oy), self._expand(bh)
        oxp, bwp = self._expand(ox), self._expand(bw)
        return (
            self._expand(on)
            & (offr >= oyp)
            & (offr < oyp + bhp)
            & (offc >= oxp)
            & (offc < oxp + bwp)
        )

    def building_share(self, keys: np.ndarray, built: np.ndarray) -> np.ndarray:
        """Share of each tile's pixels covered by buildings (drives floor area)."""
        out = np.zeros(len(keys))
        for s in range(0, len(keys), 512):
            sl = slice(s, s + 512)
            out[sl] = self.building_mask(self.lots(keys[sl]), built[sl]).mean(axis=(1, 2))
        return out

    # -- rendering ------------------------------------------------------------------------------
    def render(
        self,
        keys: np.ndarray,
        land_cover: np.ndarray,
        built: np.ndarray,
        years: np.ndarray,
        noise_seed: int,
        highways: dict[int, list[tuple[float, float, float, float]]] | None = None,
    ) -> np.ndarray:
        """(n, P, P, 3) uint8 tiles.  ``highways``: tile index -> segments in tile pixels."""
        keys = np.asarray(keys, dtype=np.int64).reshape(-1, 2)
        n = len(keys)
        land_cover = np.asarray(land_cover).reshape(n)
        built = np.where(land_cover == SETTLED, np.asarray(built, dtype=np.float64), 0.0)
        years = np.broadcast_to(np.asarray(years, dtype=np.int64), (n,))
        out = np.empty((n, self.P, self.P, 3), np.uint8)
        noise_rng = np.random.default_rng([self.seed, 14, int(noise_seed)])
        chunk = max(64, 2**20 // (self.P * self.P))
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            hw = None
            if highways:
                hw = {i - s: v for i, v in highways.items() if s <= i < e}
            out[s:e] = self._render_chunk(
                keys[s:e], land_cover[s:e], built[s:e], years[s:e], noise_rng, hw
            )
        return out

    def _season(self, year: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 13, int(year)])
        return (rng.uniform(0.93, 1.07) * rng.normal(1.0, 0.015, 3)).astype(np.float32)

    # -- seamless value noise keyed by global tile coordinates -------------------------------
    def _fine_noise(self, keys: np.ndarray, cells: int, stream: int) -> np.ndarray:
        """(n, P, P) noise in about [-1, 1] with ``cells`` lattice cells per tile side."""
        if cells not in self._umats:
            self._umats[cells] = _upsample_matrix(cells + 1, self.P)
        u = self._umats[cells]
        i = np.arange(cells + 1)
        gx = keys[:, 0:1] * cells + i[None, :]
        gy = keys[:, 1:2] * cells + i[None, :]
        v = 2.0 * _hash01(self.seed, stream, gx[:, None, :], gy[:, :, None]) - 1.0
        return u @ v.astype(np.float32) @ u.T

    def _coarse_noise(self, keys: np.ndarray, tiles_per_cell: int, stream: int) -> np.ndarray:
        """(n, P, P) noise in [-1, 1] whose lattice cells span ``tiles_per_cell`` tiles."""
        S, P = tiles_per_cell, self.P
        pos = (np.arange(P) + 0.5) / P
        fx = ((keys[:, 0] % S)[:, None] + pos[None, :]) / S
        fy = ((keys[:, 1] % S)[:, None] + pos[None, :]) / S
        sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        cx, cy = keys[:, 0] // S, keys[:, 1] // S

        def h(dx: int, dy: int) -> np.ndarray:
            return (2.0 * _hash01(self.seed, stream, cx + dx, cy + dy) - 1.0)[:, None]

        top = h(0, 0) * (1 - sx) + h(1, 0) * sx
        bot = h(0, 1) * (1 - sx) + h(1, 1) * sx
        out = (1 - sy)[:, :, None] * top[:, None, :] + sy[:, :, None] * bot[:, None, :]
        return out.astype(np.float32)

    def _render_chunk(self, keys, lc, built, years, noise_rng, highways) -> np.ndarray:
        P, n = self.P, len(keys)
        lots = self.lots(keys)
        # per-tile fine texture and field layout (year independent), crop rotation per year
        pix = np.empty((n, P, P), np.float32)
        orient = np.empty((n, self.GQ, self.GQ), bool)
        crop = np.empty((n, self.GQ, self.GQ), np.int8)
        for t, (kx, ky) in enumerate(keys):
            rng = np.random.default_rng([self.seed, 15, int(kx), int(ky)])
            pix[t] = rng.random((P, P), dtype=np.float32)
            orient[t] = rng.random((self.GQ, self.GQ)) < 0.5
            crop[t] = rng.integers(0, len(_FIELDS), (self.GQ, self.GQ))
            yr = np.random.default_rng([self.seed, 12, int(years[t]), int(kx), int(ky)])
            rot = yr.random((self.GQ, self.GQ)) < 0.25
            crop[t] = np.where(rot, yr.integers(0, len(_FIELDS), (self.GQ, self.GQ)), crop[t])
        yy, xx = np.mgrid[0:P, 0:P].astype(np.float32) + 0.5
        img = np.empty((n, P, P, 3), np.float32)
        r = np.arange(P)
        # water: dark, with a faint ripple continuing across tiles
        idx = np.flatnonzero(lc == WATER)
        if idx.size:
            k = keys[idx].astype(np.float64) * P
            ph = (0.9 * k[:, 1] + 0.35 * k[:, 0]) % (2 * np.pi)
            ripple = 0.05 * np.sin(0.9 * yy + 0.35 * xx + ph[:, None, None].astype(np.float32))
            v = 1.0 + ripple + 0.1 * self._fine_noise(keys[idx], 2, 1) + 0.05 * (pix[idx] - 0.5)
            img[idx] = v[..., None] * _WATER
        # forest: dark green canopy, crowns as darker speckle
        idx = np.flatnonzero(lc == FOREST)
        if idx.size:
            kk = keys[idx]
            crowns = np.where(pix[idx] < 0.25, 0.72, 1.0)
            v = 1.0 + 0.12 * self._fine_noise(kk, 2, 2) + 0.14 * self._fine_noise(kk, 10, 3)
            v = (v + 0.25 * (pix[idx] - 0.5)) * crowns
            img[idx] = v[..., None] * _FOREST
        # bare mountain: ridged relief with hill shading, brown to grey rock
        idx = np.flatnonzero(lc == MOUNTAIN)
        if idx.size:
            kk = keys[idx]
            elev = (
                self._coarse_noise(kk, 2, 4)
                + 0.6 * (1.0 - np.abs(self._fine_noise(kk, 2, 5)))
                + 0.25 * (1.0 - np.abs(self._fine_noise(kk, 6, 6)))
                + 0.08 * self._fine_noise(kk, 16, 7)
            )
            gy_, gx_ = np.gradient(elev, axis=(1, 2))
            shade = np.clip(1.0 + 0.35 * P * (gx_ - gy_), 0.6, 1.4)
            mix = (0.5 + 0.5 * self._coarse_noise(kk, 3, 8))[..., None]
            col = _MOUNTAIN[0] * (1 - mix) + _MOUNTAIN[1] * mix
            v = shade * (1.0 + 0.12 * (pix[idx] - 0.5))
            img[idx] = v[..., None] * col
        # settled: fields, paved ground, roads, buildings
        idx = np.flatnonzero(lc == SETTLED)
        if idx.size:
            img[idx] = self._settled(idx, keys, lots, built, pix, orient, crop, r)
        # highways (inter-city roads) crossing the tile
        if highways:
            for t, segs in highways.items():
                m = np.zeros((P, P), bool)
                for x0, y0, x1, y1 in segs:
                    m |= _seg_dist(xx, yy, (x0, y0), (x1, y1)) <= max(0.8, P / 80)
                img[t][m] = _HIGHWAY
        # season, clouds (large soft blobs, different every year), sensor noise
        for y in np.unique(years):
            sel = np.flatnonzero(years == y)
            img[sel] *= self._season(int(y))
            ys = 1000 + int(y) % 100_000
            cloud = (
                0.6 * self._coarse_noise(keys[sel], 4, ys)
                + 0.3 * self._coarse_noise(keys[sel], 1, ys + 1)
                + 0.08 * self._fine_noise(keys[sel], 4, ys + 2)
            )
            alpha = np.clip((cloud - _CLOUD_LEVEL) / 0.3, 0, 1) * 0.92
            has = alpha.max(axis=(1, 2)) > 0
            for t, a in zip(sel[has], alpha[has], strict=True):
                img[t] = img[t] * (1 - a[..., None]) + _CLOUD * a[..., None]
        img += noise_rng.normal(0.0, 2.0, (n, P, P, 1)).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _settled(self, idx, keys, lots, built, pix, orient, crop, r) -> np.ndarray:
        P, G, L, Q = self.P, self.G, self.L, self.Q
        sub = _Lots(*(getattr(lots, f)[idx] for f in _Lots.__dataclass_fields__))
        b = built[idx]
        m = len(idx)
        # farmland: parcels of striped fields with darker bunds
        pq = np.minimum(r // Q, self.GQ - 1)
        cp = np.take(np.take(crop[idx], pq, axis=1), pq, axis=2)
        op = np.take(np.take(orient[idx], pq, axis=1), pq, axis=2)
        stripe_r = ((r // 2) % 2).astype(np.float32)
        stripe = np.where(op, stripe_r[None, :, None], stripe_r[None, None, :])
        bund = ((r % Q) == 0)[:, None] | ((r % Q) == 0)[None, :]
        lowp = self._fine_noise(keys[idx], 2, 9)
        v = (1.0 + 0.08 * (2 * stripe - 1)) * (1.0 + 0.1 * (pix[idx] - 0.5)) * (1 + 0.05 * lowp)
        v = np.where(bund[None], v * 0.82, v)
        img = _FIELDS[cp] * v[..., None]
        # paved / built-up ground around buildings grows ahead of the buildings themselves
        kp = np.round(np.clip(1.5 * b + np.where(b > 0, 0.02, 0), 0, 1) * G * G).astype(np.int32)
        paved = self._expand(sub.rank < kp[:, None, None])
        pv = (1.0 + 0.12 * (pix[idx] - 0.5))[..., None] * _PAVED
        img = np.where(paved[..., None], pv, img)
        # street grid: every lot boundary in cores, sparser outward; only next to built-up lots
        step = np.where(b > 0.45, 1, np.where(b > 0.2, 2, np.where(b > 0.06, 4, 0))) * L
        near = paved | np.roll(paved, 1, axis=1) | np.roll(paved, 1, axis=2)
        safe = np.maximum(step, 1)[:, None, None]
        grid = ((r[None, :, None] % safe) == 0) | ((r[None, None, :] % safe) == 0)
        streets = grid & near & (step > 0)[:, None, None]
        track = (r[None, :, None] == sub.track_row[:, None, None]) & ((b > 0) & (b <= 0.2))[
            :, None, None
        ]
        img = np.where(track[..., None], _TRACK, img)
        img = np.where(streets[..., None], _ROAD, img)
        # buildings with a one-pixel shadow to the south-east
        bm = self.building_mask(sub, b)
        roof = _ROOFS[self._expand(sub.roof)] * self._expand(sub.shade)[..., None]
        sh = np.zeros_like(bm)
        sh[:, 1:, 1:] = bm[:, :-1, :-1]
        sh &= ~bm
        img = np.where(sh[..., None], img * 0.5, img)
        img = np.where(bm[..., None], roof, img)
        assert img.shape == (m, P, P, 3)
        return img


# ---------------------------------------------------------------------------------------------
# The country
# ---------------------------------------------------------------------------------------------
@dataclass
class _Seat:
    kind: str
    name: str
    col: float  # tile units, from the block's left edge
    row: float  # tile units, from the block's top edge
    edz_type: str | None = None
    province: int = -1


class SyntheticCountry:
    """Synthetic country ``SYN``: latent development, land cover, imagery and ground truth."""

    def __init__(self, spec: SyntheticSpec | None = None) -> None:
        self.spec = spec or SyntheticSpec()
        s = self.spec
        self.tiles: list[Tile] = tiles_in_block(s.z, s.x0, s.y0, s.nx, s.ny)
        self.bounds_3857 = block_bounds_3857(s.z, s.x0, s.y0, s.nx, s.ny)
        left, bottom, right, top = self.bounds_3857
        self._tile_m = (right - left) / s.nx  # tile side in EPSG:3857 metres
        self.renderer = TileRenderer(s.seed, s.tile_px)
        jj, ii = np.mgrid[0 : s.ny, 0 : s.nx]
        self._row = jj + 0.5
        self._col = ii + 0.5
        self._keys = np.stack([(ii + s.x0).ravel(), (jj + s.y0).ravel()], axis=1).astype(np.int64)
        # real ground size: Mercator metres shrink by cos(latitude)
        lat = np.array([self.tiles[j * s.nx].center_lonlat()[1] for j in range(s.ny)])
        self._row_cos = np.cos(np.radians(lat))  # (ny,)
        self._tile_side_m = _EARTH_CIRCUMFERENCE_M / 2**s.z * self._row_cos
        self._dev_cache: dict[int, np.ndarray] = {}
        self._build()

    # -- geography --------------------------------------------------------------------------
    def _build(self) -> None:
        s = self.spec
        rng = np.random.default_rng([s.seed, 1])
        ny, nx = s.ny, s.nx
        size = math.sqrt(nx * ny)
        self._rscale = float(np.clip(size / 40.0, 0.45, 1.3))
        row, col = self._row, self._col

        # a meandering river (plus a tributary) carves a valley through rolling hills
        def meander(start: tuple[float, float], end: tuple[float, float], amp: float) -> np.ndarray:
            tt = np.linspace(0, 1, 80)
            k = rng.uniform(1.0, 2.5)
            ph = rng.uniform(0, 2 * np.pi)
            x = start[0] + (end[0] - start[0]) * tt
            y = start[1] + (end[1] - start[1]) * tt
            dx, dy = end[0] - start[0], end[1] - start[1]
            nrm = math.hypot(dx, dy) or 1.0
            off = amp * np.sin(2 * np.pi * k * tt + ph) * np.sin(np.pi * tt) ** 0.3
            return np.stack([x - dy / nrm * off, y + dx / nrm * off], axis=1)

        y_in, y_out = rng.uniform(0.25, 0.75, 2) * ny
        river = meander((-1.0, y_in), (nx + 1.0, y_out), 0.12 * ny)
        j = int(rng.integers(20, 60))
        trib_start = (rng.uniform(0.3, 0.7) * nx, -1.0 if rng.random() < 0.5 else ny + 1.0)
        trib = meander(trib_start, tuple(river[j]), 0.06 * size)
        d_river = self._polyline_dist(river)
        d_trib = self._polyline_dist(trib)
        d_water = np.minimum(d_river, d_trib)
        hills = _smooth_noise(rng, (ny, nx), size / 7) + 0.45 * _smooth_noise(
            rng, (ny, nx), size / 18
        )
        elev = hills + 2.2 * np.tanh(d_water / (0.28 * size))
        elev = (elev - elev.mean()) / elev.std()
        water = (d_river < 0.62) | (d_trib < 0.42)
        lake_seed = np.unravel_index(np.argmin(np.where(water, np.inf, hills)), hills.shape)
        lake_r = max(1.0, 0.06 * size)
        wobble = 0.5 * lake_r * _smooth_noise(rng, (ny, nx), 1.0)
        lake = np.hypot(row - row[lake_seed], col - col[lake_seed]) + wobble < lake_r
        water |= lake
        self._elev = elev
        land = ~water
        habit = -elev + 0.3 * _smooth_noise(rng, (ny, nx), size / 10)

        # seats: capital, provincial and county seats on lowland, spread apart
        def pick(score: np.ndarray, taken: list[tuple[float, float]], dmin: float, margin: float):
            ok = land & (row > margin) & (row < ny - margin) & (col > margin) & (col < nx - margin)
            sc = np.where(ok, score + 0.35 * rng.standard_normal(score.shape), -np.inf)
            for _ in range(30):
                for flat in np.argsort(-sc, axis=None):
                    if not np.isfinite(sc.flat[flat]):
                        break
                    rr, cc = row.flat[flat], col.flat[flat]
                    if all(math.hypot(rr - a, cc - b) >= dmin for a, b in taken):
                        jr, jc = rng.uniform(-0.25, 0.25, 2)
                        return float(rr + jr), float(cc + jc)
                dmin *= 0.85
            raise RuntimeError("could not place a seat")  # pragma: no cover

        names = _names(rng, s.n_districts + s.n_provinces + 12)
        seats: list[_Seat] = []
        taken: list[tuple[float, float]] = []
        center = -np.hypot(row - ny / 2, col - nx / 2) / size
        r0, c0 = pick(habit + 2.0 * center, taken, 0, 0.2 * min(nx, ny))
        seats.append(_Seat("capital", names.pop(0), c0, r0, province=0))
        taken.append((r0, c0))
        for p in range(1, s.n_provinces):
            r1, c1 = pick(habit, taken, 0.45 * size / math.sqrt(s.n_provinces), 1.0)
            seats.append(_Seat("provincial_hub", names.pop(0), c1, r1, province=p))
            taken.append((r1, c1))
        for _ in range(s.n_districts - s.n_provinces):
            r1, c1 = pick(habit, taken, 0.8 * size / math.sqrt(s.n_districts), 0.5)
            seats.append(_Seat("county_hub", names.pop(0), c1, r1))
            taken.append((r1, c1))
        prov_seats = seats[: s.n_provinces]
        for st in seats[s.n_provinces :]:
            st.province = int(
                np.argmin([math.hypot(st.row - p.row, st.col - p.col) for p in prov_seats])
            )
        self._seats = seats
        self._province_names = [
            f"{'South ' if i % 2 else ''}{p.name}" if i else f"{p.name} Capital"
            for i, p in enumerate(prov_seats)
        ]

        # roads: capital to each provincial seat, a minimum spanning tree over all seats
        pts = [(st.col, st.row) for st in seats]
        edges = {(0, p) for p in range(1, s.n_provinces)}
        inside = {0}
        while len(inside) < len(pts):
            best = min(
                (math.dist(pts[a], pts[b]), a, b)
                for a in inside
                for b in range(len(pts))
                if b not in inside
            )
            edges.add((best[1], best[2]))
            inside.add(best[2])
        roads = []
        for a, b in sorted(edges):
            (xa, ya), (xb, yb) = pts[a], pts[b]
            bend = rng.normal(0, 0.08)
            mx, my = (xa + xb) / 2 - (yb - ya) * bend, (ya + yb) / 2 + (xb - xa) * bend
            roads.append([(xa, ya), (mx, my), (xb, yb)])
        self._roads = roads
        d_road = np.full((ny, nx), np.inf)
        for rd in roads:
            d_road = np.minimum(d_road, self._polyline_dist(np.array(rd)))
        self._d_road = d_road

        # special places: economic development zones, mines, a nuclear site
        dist_seat = np.min([np.hypot(row - st.row, col - st.col) for st in seats], axis=0)
        high = elev > np.quantile(elev[land], 0.7)
        specials: list[_Seat] = []
        taken_sp = list(taken)

        def near(score, lo, hi, anchor=None):
            dd = dist_seat if anchor is None else np.hypot(row - anchor[0], col - anchor[1])
            for _ in range(6):
                ok = (dd >= lo) & (dd <= hi)
                if ok.any():
                    break
                lo, hi = lo * 0.6, hi * 1.5
            return np.where(ok, score, -np.inf)

        sr = self._rscale
        pref = {
            "industrial": near(habit + 1.0 * (d_road < 1.5), 2.5 * sr, 5.5 * sr, (r0, c0)),
            "tourism": near(-0.5 * np.abs(d_water - 1.5) + 0.3 * elev, 3 * sr, 9 * sr),
            "agricultural": near(habit, 3 * sr, 9 * sr),
        }
        for et in EDZ_TYPES:
            rr, cc = pick(pref[et], taken_sp, 2.5 * sr, 0.5)
            specials.append(_Seat("edz", f"{names.pop(0)} {et.capitalize()} Zone", cc, rr, et))
            taken_sp.append((rr, cc))
        for _ in range(2):
            rr, cc = pick(np.where(high, elev, -np.inf), taken_sp, 3.0 * sr, 0.5)
            specials.append(_Seat("mine", f"{names.pop(0)} Mine", cc, rr))
            taken_sp.append((rr, cc))
        rr, cc = pick(
            near(-np.abs(d_water - 1.5) - 0.2 * np.abs(elev), 4 * sr, 12 * sr),
            taken_sp,
            3 * sr,
            0.5,
        )
        specials.append(_Seat("nuclear_site", f"{names.pop(0)} Nuclear Research Centre", cc, rr))
        self._specials = specials

        # settled land: all urban footprints plus the most habitable land (valleys, road sides)
        final = self._urban_components(s.years[-1])
        forced = land & (final >= 0.18)
        score = (
            habit + 2.5 * final + 0.6 * np.exp(-d_road / 1.5) + 0.25 * rng.standard_normal((ny, nx))
        )
        target = int(round(_TARGET_SETTLED * nx * ny))
        settled = forced.copy()
        need = target - int(forced.sum())
        if need > 0:
            cand = np.where(land & ~forced, score, -np.inf).ravel()
            pick_idx = np.argsort(-cand, kind="stable")[:need]
            pick_idx = pick_idx[np.isfinite(cand[pick_idx])]
            settled.flat[pick_idx] = True
        rest = land & ~settled
        mscore = elev + 0.4 * _smooth_noise(rng, (ny, nx), size / 12)
        cut = np.quantile(mscore[rest], 0.55) if rest.any() else 0.0
        lc = np.full((ny, nx), FOREST, np.int64)
        lc[water] = WATER
        lc[rest & (mscore > cut)] = MOUNTAIN
        lc[settled] = SETTLED
        self._land_cover = lc
        self._village = 0.05 + 0.1 * _sigmoid(1.5 * _smooth_noise(rng, (ny, nx), size / 14))
        self._dev_noise = _smooth_noise(rng, (ny, nx), size / 20)
        # per-tile fixed factors for the truth table
        self._fa_noise = np.exp(rng.normal(0, 0.05, (ny, nx)))
        self._pp_noise = np.exp(rng.normal(0, 0.15, (ny, nx)))
        self._nl_noise = np.exp(rng.normal(0, 0.08, (ny, nx)))

    def _polyline_dist(self, pts: np.ndarray) -> np.ndarray:
        """Distance (tile units) from every tile centre to a polyline given as (col, row) points."""
        d = np.full(self._row.shape, np.inf)
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            d = np.minimum(d, _seg_dist(self._col, self._row, tuple(a), tuple(b)))
        return d

    def _growth(self, year: int) -> tuple[float, float]:
        """(years since the first year clipped to the span, fraction of the span)."""
        ys = self.spec.years
        span = max(1, ys[-1] - ys[0])
        t = float(np.clip(year - ys[0], 0, 1.5 * span))
        return t, t / span

    def _urban_components(self, year: int) -> np.ndarray:
        """Soft union of all non-village development sources for a year (before masking)."""
        t, f = self._growth(year)
        g = 1.0 + 0.025 * t
        sr = self._rscale
        row, col = self._row, self._col
        comps = []
        spec = {"capital": (0.97, 3.0), "provincial_hub": (0.72, 1.9), "county_hub": (0.45, 1.0)}
        for st in self._seats:
            peak, rad = spec[st.kind]
            d = np.hypot(row - st.row, col - st.col)
            comps.append(peak * np.exp(-((d / (rad * sr * g)) ** 1.6)))
        comps.append(0.12 * (1 + 0.02 * t) * np.exp(-((self._d_road / 0.7) ** 2)))
        for sp in self._specials:
            d = np.hypot(row - sp.row, col - sp.col)
            if sp.kind == "edz":
                peak, rad = 0.12 + 0.62 * f, (0.6 + 0.7 * f) * max(sr, 0.7)
                comps.append(peak * np.exp(-((d / rad) ** 2)))
            elif sp.kind == "mine":
                comps.append(0.22 * np.exp(-((d / 0.6) ** 2)))
            else:
                comps.append(0.3 * np.exp(-((d / 0.5) ** 2)))
        return 1.0 - np.prod([1.0 - c for c in comps], axis=0)

    # -- public API -----------------------------------------------------------------------------
    def development(self, year: int) -> np.ndarray:
        """(ny, nx) latent development in [0, 1]; 0 exactly where nobody lives."""
        year = int(year)
        if year not in self._dev_cache:
            t, _ = self._growth(year)
            urban = self._urban_components(year)
            village = self._village * (1 + 0.01 * t)
            dev = 1.0 - (1.0 - urban) * (1.0 - village)
            dev = np.clip(dev * (1.0 + 0.06 * self._dev_noise), 0.03, 1.0)
            self._dev_cache[year] = np.where(self._land_cover == SETTLED, dev, 0.0)
        return self._dev_cache[year].copy()

    def land_cover(self) -> np.ndarray:
        """(ny, nx) int: 0 water, 1 forest, 2 bare mountain, 3 settled (farmland, towns)."""
        return self._land_cover.copy()

    def tile_images(self, year: int) -> np.ndarray:
        """(ny*nx, P, P, 3) uint8 tiles in row-major order (same order as :meth:`tile_truth`)."""
        built = built_fraction(self.development(year)).ravel()
        return self.renderer.render(
            self._keys, self._land_cover.ravel(), built, np.full(len(self._keys), year),
            noise_seed=int(year), highways=self._highways,
        )  # fmt: skip

    def render_year(self, year: int) -> np.ndarray:
        """(ny*P, nx*P, 3) uint8: the whole country's scene for one year."""
        s, P = self.spec, self.spec.tile_px
        tiles = self.tile_images(year).reshape(s.ny, s.nx, P, P, 3)
        return np.ascontiguousarray(tiles.transpose(0, 2, 1, 3, 4).reshape(s.ny * P, s.nx * P, 3))

    @cached_property
    def _highways(self) -> dict[int, list[tuple[float, float, float, float]]]:
        """Road segments clipped to the tiles they cross, in tile pixel coordinates."""
        s, P = self.spec, self.spec.tile_px
        out: dict[int, list[tuple[float, float, float, float]]] = {}
        for rd in self._roads:
            for (xa, ya), (xb, yb) in zip(rd[:-1], rd[1:], strict=True):
                ln = math.hypot(xb - xa, yb - ya)
                tt = np.linspace(0, 1, max(2, int(ln * 8)))
                cells = {
                    (int(math.floor(ya + (yb - ya) * q)), int(math.floor(xa + (xb - xa) * q)))
                    for q in tt
                }
                for j, i in sorted(cells):
                    if 0 <= j < s.ny and 0 <= i < s.nx:
                        seg = ((xa - i) * P, (ya - j) * P, (xb - i) * P, (yb - j) * P)
                        out.setdefault(j * s.nx + i, []).append(seg)
        return out

    @cached_property
    def _tile_area_m2(self) -> np.ndarray:
        side = np.repeat(self._tile_side_m[:, None], self.spec.nx, axis=1)
        return side * side

    @cached_property
    def _tile_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "z": np.array([t.z for t in self.tiles], dtype=np.int64),
                "x": np.array([t.x for t in self.tiles], dtype=np.int64),
                "y": np.array([t.y for t in self.tiles], dtype=np.int64),
                "tile_id": [t.tile_id for t in self.tiles],
            }
        )

    def tile_truth(self, year: int) -> pd.DataFrame:
        """Per-tile ground truth, computed from the same built fraction the renderer draws."""
        dev = self.development(year)
        built = built_fraction(dev)
        share = self.renderer.building_share(self._keys, built.ravel()).reshape(dev.shape)
        floor = share * self._tile_area_m2 * floors_for(built) * self._fa_noise
        floor = np.where(dev > 0, floor, 0.0)
        pop = np.round(floor / _M2_PER_PERSON * self._pp_noise)
        nl = NIGHTLIGHT_MAX * (1 - np.exp(-np.clip(dev - NIGHTLIGHT_THRESHOLD, 0, None) / 0.25))
        yr = np.random.default_rng([self.spec.seed, 21, int(year)])
        nl = nl * self._nl_noise * np.exp(yr.normal(0, 0.05, dev.shape))
        nl = np.where(dev >= NIGHTLIGHT_THRESHOLD, np.minimum(nl, NIGHTLIGHT_MAX), 0.0)
        df = self._tile_frame.copy()
        df["development"] = dev.ravel()
        df["building_floor_area_m2"] = floor.ravel()
        df["population"] = pop.ravel().astype(np.int64)
        df["nightlight"] = nl.ravel()
        df["built_up_share"] = np.where(dev > 0, share, 0.0).ravel()  # land-cover built-up ratio
        df["inhabited"] = (dev > 0).ravel()
        df["urban"] = (dev >= URBAN_THRESHOLD).ravel()
        return df

    # -- geometry -----------------------------------------------------------------------------
    def _to_3857(self, col: float, row: float) -> tuple[float, float]:
        left, _, _, top = self.bounds_3857
        return left + col * self._tile_m, top - row * self._tile_m

    def _km_between(self, x: np.ndarray, y: np.ndarray, px: float, py: float) -> np.ndarray:
        """Ground km between Mercator points (scale factor cos(lat) at the mid latitude)."""
        lat = np.degrees(2 * np.arctan(np.exp(((y + py) / 2) / 6378137.0)) - np.pi / 2)
        return np.hypot(x - px, y - py) * np.cos(np.radians(lat)) / 1000.0

    def points_of_interest(self) -> gpd.GeoDataFrame:
        """Capital, provincial and county seats (one per district), mines, nuclear site, EDZs."""
        items = [*self._seats, *self._specials]
        return gpd.GeoDataFrame(
            {
                "kind": pd.Series([it.kind for it in items], dtype=object),
                "name": pd.Series([it.name for it in items], dtype=object),
                "edz_type": pd.Series([it.edz_type for it in items], dtype=object),
            },
            geometry=[Point(*self._to_3857(it.col, it.row)) for it in items],
            crs="EPSG:3857",
        )

    def districts(self, year: int | None = None) -> gpd.GeoDataFrame:
        """Voronoi cells of the district seats clipped to the exact block bounds.

        ``population`` sums tile population of ``year`` (default: first year, the census).
        """
        s = self.spec
        frame = box(*self.bounds_3857)
        seeds = [Point(*self._to_3857(st.col, st.row)) for st in self._seats]
        cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=frame)
        geoms: list = [None] * len(seeds)
        for cell in cells.geoms:
            for i, p in enumerate(seeds):
                if geoms[i] is None and cell.contains(p):
                    geoms[i] = cell.intersection(frame)
                    break
        truth = self.tile_truth(s.years[0] if year is None else year)
        tcov = self._tile_district
        pop = truth.groupby(tcov.ravel())["population"].sum()
        out = []
        for i, st in enumerate(self._seats):
            g = geoms[i]
            lat = np.degrees(2 * np.arctan(np.exp(g.centroid.y / 6378137.0)) - np.pi / 2)
            out.append(
                {
                    "district_id": i,
                    "name": st.name,
                    "province_id": st.province,
                    "province": self._province_names[st.province],
                    "population": int(pop.get(i, 0)),
                    "area_km2": g.area * math.cos(math.radians(lat)) ** 2 / 1e6,
                    "geometry": g,
                }
            )
        return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:3857")

    @cached_property
    def _tile_district(self) -> np.ndarray:
        d = np.stack([np.hypot(self._row - st.row, self._col - st.col) for st in self._seats])
        return np.argmin(d, axis=0)

    def tile_covariates(self) -> pd.DataFrame:
        """Per-tile regional features for the regressions (distances in ground km).

        ``dist_provincial_km``: to the nearest provincial-level seat (capital included);
        ``dist_county_km``: to the nearest district seat of any level.
        """
        x, y = self._to_3857(self._col, self._row)

        def nearest(items: list[_Seat]) -> tuple[np.ndarray, np.ndarray]:
            ds = np.stack([self._km_between(x, y, *self._to_3857(it.col, it.row)) for it in items])
            return ds.min(axis=0), ds.argmin(axis=0)

        cap, _ = nearest(self._seats[:1])
        prov, _ = nearest(self._seats[: self.spec.n_provinces])
        county, _ = nearest(self._seats)
        edz = [sp for sp in self._specials if sp.kind == "edz"]
        d_edz, which = nearest(edz)
        d_mine, _ = nearest([sp for sp in self._specials if sp.kind == "mine"])
        in_edz = d_edz <= EDZ_RADIUS_KM
        dist = self._tile_district
        df = self._tile_frame.copy()
        df["dist_capital_km"] = cap.ravel()
        df["dist_provincial_km"] = prov.ravel()
        df["dist_county_km"] = county.ravel()
        df["in_edz"] = in_edz.ravel()
        df["edz_type"] = pd.Series(
            np.where(
                in_edz, np.array([e.edz_type for e in edz], dtype=object)[which], None
            ).ravel(),
            dtype=object,
        )
        df["near_mine"] = (d_mine <= NEAR_MINE_KM).ravel()
        df["district_id"] = dist.ravel().astype(np.int64)
        prov_id = np.array([st.province for st in self._seats])[dist]
        df["province_id"] = prov_id.ravel().astype(np.int64)
        df["province"] = [self._province_names[p] for p in prov_id.ravel()]
        return df

    # -- training material ---------------------------------------------------------------------
    def pretrain_set(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Images from the country's own renderer at random draws, with 4-vote soft labels.

        Labels are (urban, rural, uninhabited) fractions in quarters, as four people looking
        at the tile would vote: confident far from the class boundaries, split near them.
        """
        rng = np.random.default_rng([int(seed), 31])
        lc = rng.choice(4, n, p=[0.12, 0.22, 0.16, 0.50])
        village = rng.uniform(0.03, 0.35, n)
        town = rng.uniform(0.3, 1.0, n)
        dev = np.where(lc == SETTLED, np.where(rng.random(n) < 0.6, village, town), 0.0)
        keys = np.stack(
            [rng.integers(0, 2**self.spec.z, n), rng.integers(0, 2**self.spec.z, n)], axis=1
        )
        years = rng.choice(np.array(self.spec.years), n)
        images = self.renderer.render(
            keys, lc, built_fraction(dev), years, noise_seed=10_000 + int(seed)
        )
        p_urban = _sigmoid((dev - URBAN_THRESHOLD) / 0.04)
        p_empty = np.where(lc == SETTLED, 0.9 * _sigmoid((0.06 - dev) / 0.015), 0.97)
        probs = np.stack([(1 - p_empty) * p_urban, (1 - p_empty) * (1 - p_urban), p_empty], axis=1)
        probs = np.where(lc[:, None] == SETTLED, probs, np.array([0.0, 0.03, 0.97]))
        votes = rng.multinomial(4, probs / probs.sum(axis=1, keepdims=True))
        return images, (votes / 4.0).astype(np.float32)

    def simulate_annotators(
        self, cluster_development: dict[int, float], seed: int
    ) -> dict[str, str]:
        """Per-annotator POG lines (most developed first) from clusters' mean true development.

        Careful annotators see the truth with small noise and tie near-equal clusters; one is
        careless (large noise, random swaps); one or two leave a cluster out (incomparable).
        Clusters with development <= 0 (the uninhabited cluster) sit alone at the bottom.
        """
        rng = np.random.default_rng([int(seed), 41])
        n_ann = self.spec.n_annotators
        careless = int(rng.integers(n_ann))
        names = [
            f"careless{i + 1}" if i == careless else f"{ANNOTATOR_ROLES[i % 3]}{i + 1}"
            for i in range(n_ann)
        ]
        ids = sorted(int(c) for c in cluster_development)
        bottom = [c for c in ids if cluster_development[c] <= 0]
        free = [c for c in ids if cluster_development[c] > 0]
        means = np.array([float(cluster_development[c]) for c in free])
        span = float(means.max() - means.min()) if len(means) > 1 else 1.0
        span = span if span > 0 else 1.0
        careful = [i for i in range(n_ann) if i != careless]
        n_drop = int(rng.integers(1, 3)) if len(free) >= 3 else 0
        droppers = set(rng.choice(careful, min(n_drop, len(careful)), replace=False).tolist())
        out: dict[str, str] = {}
        for i, name in enumerate(names):
            sigma = (0.3 if i == careless else (0.03, 0.05, 0.04)[i % 3]) * span
            v = means + rng.normal(0, sigma, len(means))
            order = list(np.argsort(-v, kind="stable"))
            if i == careless:
                for _ in range(max(1, len(order) // 4)):
                    if len(order) > 1:
                        a = int(rng.integers(len(order) - 1))
                        order[a], order[a + 1] = order[a + 1], order[a]
            if i in droppers:
                order.pop(int(rng.integers(len(order))))
            tiers: list[list[int]] = []
            head = None
            for o in order:
                if tiers and head is not None and abs(v[head] - v[o]) < 0.03 * span:
                    tiers[-1].append(free[o])
                else:
                    tiers.append([free[o]])
                    head = o
            if bottom:
                tiers.append(list(bottom))
            out[name] = ">".join("=".join(str(c) for c in sorted(t)) for t in tiers)
        return out
