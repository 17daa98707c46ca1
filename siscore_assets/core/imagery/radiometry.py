"""Relative radiometric normalisation: a country's years brought to one radiometry before scoring.

Two yearly scenes of the same place differ in haze, sun, season and sensor calibration; a scorer
reading each year as it comes moves every tile with the year's light, not with its buildings.
Remote sensing's answer for multi-temporal comparison is relative radiometric normalisation on
pseudo-invariant features (PIFs; Schott et al. 1988; IR-MAD, Canty & Nielsen 2008): find what did
not change between two dates and map one date's bands onto the other's with a per-band linear
transform fitted there.  Here a tile is a feature: its per-band mean is read once per year
(:func:`band_means`), the tiles whose brightness *rank* among the country's tiles moved least
are the PIFs, and the per-band gain / offset is fitted on them by matching robust location and
spread (median and inter-quartile range: unbiased when both years are noisy, unlike a
regression of one on the other), re-selecting the PIFs on the fitted residuals once (the
iterative reweighting of IR-MAD).  Every year is fitted to the first year; the country's
canonical radiometry is the median of those fits, so one hazy year is mapped to the others
rather than the others to it (:func:`canonical_transforms`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Share of the tiles both years hold kept as pseudo-invariant.
PIF_SHARE = 0.5
#: Fewer common tiles than this: no fit (identity).
MIN_TILES = 8


@dataclass(frozen=True)
class BandTransform:
    """``out = gain * x + offset`` per band (RGB, pixel units 0..255)."""

    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pifs: int = 0  # tiles the fit used (0: identity)

    @property
    def is_identity(self) -> bool:
        return self.gain == (1.0, 1.0, 1.0) and self.offset == (0.0, 0.0, 0.0)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) -> uint8, rounded and clipped to 0..255."""
        if self.is_identity:
            return images
        g = np.asarray(self.gain, np.float32)
        o = np.asarray(self.offset, np.float32)
        out = images.astype(np.float32) * g + o
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def then(self, other: BandTransform) -> BandTransform:
        """This transform followed by ``other``."""
        g = np.asarray(other.gain) * np.asarray(self.gain)
        o = np.asarray(other.gain) * np.asarray(self.offset) + np.asarray(other.offset)
        return _transform(g, o, self.pifs)

    def inverse(self) -> BandTransform:
        g = 1.0 / np.asarray(self.gain)
        return _transform(g, -np.asarray(self.offset) * g, self.pifs)

    def as_dict(self) -> dict:
        return {"gain": list(self.gain), "offset": list(self.offset), "pifs": self.pifs}


def _transform(gain: np.ndarray, offset: np.ndarray, pifs: int) -> BandTransform:
    return BandTransform(tuple(float(v) for v in gain), tuple(float(v) for v in offset), int(pifs))  # type: ignore[arg-type]


def band_means(images: np.ndarray) -> np.ndarray:
    """(N, 3) float64 per-tile band means of uint8 (N, H, W, 3) images."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {arr.shape}")
    return arr.reshape(len(arr), -1, 3).mean(axis=1, dtype=np.float64)


def _match(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band gain / offset taking ``x``'s median and IQR onto ``ref``'s."""
    qx = np.percentile(x, [25, 50, 75], axis=0)
    qr = np.percentile(ref, [25, 50, 75], axis=0)
    gain = (qr[2] - qr[0]) / np.maximum(qx[2] - qx[0], 1e-6)
    gain = np.clip(gain, 0.25, 4.0)
    return gain, qr[1] - gain * qx[1]


def fit_relative(
    ref: pd.DataFrame, cur: pd.DataFrame, pif_share: float = PIF_SHARE
) -> BandTransform:
    """The per-band transform taking ``cur``'s radiometry onto ``ref``'s.

    ``ref``, ``cur``: per-tile band means indexed by tile id (columns r, g, b); only tiles in
    both count, in ``ref``'s order (:func:`fit_aligned`)."""
    common = ref.index.intersection(cur.index)
    return fit_aligned(
        ref.loc[common].to_numpy(np.float64), cur.loc[common].to_numpy(np.float64), pif_share
    )


def fit_aligned(ref: np.ndarray, cur: np.ndarray, pif_share: float = PIF_SHARE) -> BandTransform:
    """:func:`fit_relative` on (n, 3) band means of the same n tiles, row by row (the tiles
    both years hold, in the reference year's order): no tile ids held in memory.

    PIFs: the ``pif_share`` of them whose brightness rank moved least; refitted once on the
    tiles with the smallest residuals after the first fit."""
    if len(ref) != len(cur):
        raise ValueError(f"aligned band means differ in length: {len(ref)} and {len(cur)}")
    if len(ref) < MIN_TILES:
        return BandTransform()
    a = np.asarray(ref, np.float64)
    b = np.asarray(cur, np.float64)
    k = max(MIN_TILES, int(round(pif_share * len(a))))
    ra = pd.Series(a.mean(axis=1)).rank(pct=True).to_numpy()
    rb = pd.Series(b.mean(axis=1)).rank(pct=True).to_numpy()
    pif = np.argsort(np.abs(ra - rb), kind="stable")[:k]
    gain, offset = _match(b[pif], a[pif])
    resid = np.abs(b * gain + offset - a).sum(axis=1)
    pif = np.argsort(resid, kind="stable")[:k]
    gain, offset = _match(b[pif], a[pif])
    return _transform(gain, offset, len(pif))


def canonical_transforms(means: Mapping[int, pd.DataFrame]) -> dict[int, BandTransform]:
    """Per year, the transform onto the country's canonical radiometry: each year fitted to the
    first, then all mapped by the inverse of the median fit (the typical year's radiometry)."""
    years = sorted(means)
    if not years:
        return {}
    to_first = {y: fit_relative(means[years[0]], means[y]) for y in years[1:]}
    return canonical_from_fits(years[0], len(means[years[0]]), to_first)


def canonical_from_fits(
    first: int, first_tiles: int, to_first: Mapping[int, BandTransform]
) -> dict[int, BandTransform]:
    """:func:`canonical_transforms` from the other years' fits onto the ``first`` year (of
    ``first_tiles`` tiles), e.g. :func:`fit_aligned` on stored means."""
    fits = {first: BandTransform((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), first_tiles)}
    fits.update({y: t for y, t in to_first.items() if y != first})
    fits = {y: fits[y] for y in sorted(fits)}
    fitted = [t for t in fits.values() if t.pifs]
    median = _transform(
        np.median([t.gain for t in fitted], axis=0),
        np.median([t.offset for t in fitted], axis=0),
        0,
    ).inverse()
    return {y: t.then(median) if t.pifs else BandTransform() for y, t in fits.items()}
