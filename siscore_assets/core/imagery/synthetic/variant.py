"""A harder synthetic country for the change benchmark: SYN with more change, places that do
not change at all, places that decline, and real-sample-like year nuisance.

SYN grows every inhabited tile a little every year (villages by 1 % a year), under a mild
season; that tests levels well and change poorly: there is no tile whose truth stands still
(so no false-change rate) and the nuisance is weaker than real Sentinel-2 years.  The variant
keeps SYN's geography, so a scorer trained on SYN scores it as a new set of years.
"""

from __future__ import annotations

import numpy as np

from siscore_assets.core.imagery.synthetic.render import REAL_LIKE, TileRenderer, YearNuisance
from siscore_assets.core.imagery.synthetic.spec import SyntheticSpec
from siscore_assets.core.imagery.synthetic.world import SyntheticCountry


class ChangeVariant(SyntheticCountry):
    """SYN whose growth since the first year is ``change_scale`` times SYN's; a ``frozen_share``
    of the inhabited tiles keep their first-year development (truth unchanged), a
    ``decline_share`` lose half of what SYN would have added; years rendered under
    ``nuisance``.  Tiles are chosen by a seeded draw keyed on the spec's seed."""

    def __init__(
        self,
        spec: SyntheticSpec | None = None,
        *,
        change_scale: float = 3.0,
        frozen_share: float = 0.3,
        decline_share: float = 0.05,
        nuisance: YearNuisance | None = REAL_LIKE,
    ) -> None:
        super().__init__(spec)
        if change_scale < 0 or not 0 <= frozen_share + decline_share <= 1:
            raise ValueError("need change_scale >= 0 and 0 <= frozen_share + decline_share <= 1")
        self.change_scale = float(change_scale)
        self.renderer = TileRenderer(self.spec.seed, self.spec.tile_px, nuisance=nuisance)
        u = np.random.default_rng([self.spec.seed, 23]).random((self.spec.ny, self.spec.nx))
        self.frozen = u < frozen_share
        self.declining = (u >= frozen_share) & (u < frozen_share + decline_share)
        self._variant_cache: dict[int, np.ndarray] = {}

    def development(self, year: int) -> np.ndarray:
        """(ny, nx) development: SYN's first year plus the scaled, frozen or reversed growth."""
        year = int(year)
        if year not in self._variant_cache:
            base = super().development(self.spec.years[0])
            grown = super().development(year) - base
            step = np.where(self.declining, -0.5, self.change_scale) * grown
            dev = np.where(self.frozen, base, base + step)
            dev = np.where(base > 0, np.clip(dev, 0.03, 1.0), 0.0)
            self._variant_cache[year] = dev
        return self._variant_cache[year].copy()
