"""The tile renderer of the synthetic country: land cover and built fraction in, RGB tiles out.

One :class:`TileRenderer` serves both the country mosaic and the pretraining set, so the images
the scorer is trained on look like the ones it scores.  Every random draw is keyed by the tile's
global (x, y) and the year, never by its position in a batch: a tile renders the same whatever
block it is in, and later years only add buildings to the same lots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from siscore_assets.core.imagery.synthetic.noise import hash01, seg_dist, upsample_matrix
from siscore_assets.core.imagery.synthetic.spec import FOREST, MOUNTAIN, SETTLED, WATER

_CLOUD_LEVEL = 0.42  # cloud noise threshold: a few % of tiles carry cloud in a given year

# palette (RGB) ------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class YearNuisance:
    """Year-to-year radiometric nuisance beyond SYN's mild season: per-band gain, haze (a veil
    that adds light and removes contrast, varying smoothly across the country) and cloud shadows.

    Zero strengths render exactly as without it.  :data:`REAL_LIKE` has the magnitudes of the
    shared North Korea sample's four years (see ``docs/change.md``)."""

    band_gain_sd: float = 0.0  # sd of log gain per band and year
    haze_max: float = 0.0  # the year's veil strength is uniform in [0, haze_max]
    shadow: float = 0.0  # darkening under cloud shadows (0..1)


#: Measured on the shared sample's tiles (97 places in all four years): the per-band median of
#: the tiles' means moves by up to 30 % between years (red 45..64, green 57..65, blue 57..70),
#: within-tile contrast by 12..17 DN; a hazy year lifts dark pixels and lowers contrast.
REAL_LIKE = YearNuisance(band_gain_sd=0.10, haze_max=0.3, shadow=0.45)
_HAZE = np.array([178, 182, 190], dtype=np.float32)


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

    def __init__(self, seed: int, tile_px: int, nuisance: YearNuisance | None = None) -> None:
        self.seed = int(seed)
        self.nuisance = nuisance
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
        """Year-independent building layout of the tiles ``keys`` ((n, 2) global x, y)."""
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
            self._umats[cells] = upsample_matrix(cells + 1, self.P)
        u = self._umats[cells]
        i = np.arange(cells + 1)
        gx = keys[:, 0:1] * cells + i[None, :]
        gy = keys[:, 1:2] * cells + i[None, :]
        v = 2.0 * hash01(self.seed, stream, gx[:, None, :], gy[:, :, None]) - 1.0
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
            return (2.0 * hash01(self.seed, stream, cx + dx, cy + dy) - 1.0)[:, None]

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
                    m |= seg_dist(xx, yy, (x0, y0), (x1, y1)) <= max(0.8, P / 80)
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
            if self.nuisance is not None:
                img[sel] = self._year_nuisance(img[sel], keys[sel], int(y))
        img += noise_rng.normal(0.0, 2.0, (n, P, P, 1)).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _year_nuisance(self, img: np.ndarray, keys: np.ndarray, year: int) -> np.ndarray:
        """:class:`YearNuisance` of one year on (m, P, P, 3) float pixels."""
        nz = self.nuisance
        rng = np.random.default_rng([self.seed, 17, int(year)])
        gain = np.exp(rng.normal(0.0, nz.band_gain_sd, 3)).astype(np.float32)
        level = rng.uniform(0.0, nz.haze_max)
        ys = 5000 + int(year) % 100_000
        veil = level * (1.0 + 0.5 * self._coarse_noise(keys, 8, ys))
        veil = np.clip(veil, 0.0, 0.9)[..., None]
        img = img * (1.0 - veil) + _HAZE * veil
        if nz.shadow > 0:
            field = 0.6 * self._coarse_noise(keys, 4, ys + 1) + 0.3 * self._coarse_noise(
                keys, 1, ys + 2
            )
            dark = np.clip((field - _CLOUD_LEVEL) / 0.3, 0, 1) * nz.shadow
            img = img * (1.0 - dark[..., None])
        return img * gain

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
