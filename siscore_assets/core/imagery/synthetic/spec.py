"""What determines the synthetic country (:class:`SyntheticSpec`) and the constants others rely on.

Kept apart from the heavy modules so that code needing only a constant (land-cover codes,
thresholds, EDZ types) or the spec reads them without pulling in the renderer or the world.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    # "even": seats spread apart (SYN); "clustered": county seats crowd around the provincial
    # hubs, so district sizes vary by orders of magnitude (the district-indicator benchmark)
    district_layout: str = "even"

    def __post_init__(self) -> None:
        if not 32 <= self.tile_px <= 256:
            raise ValueError(f"tile_px must be in 32..256, got {self.tile_px}")
        if self.nx < 4 or self.ny < 4:
            raise ValueError("the synthetic country needs at least 4x4 tiles")
        if not self.years or list(self.years) != sorted(set(self.years)):
            raise ValueError("years must be a non-empty, strictly increasing tuple")
        if not 1 <= self.n_provinces <= self.n_districts <= self.nx * self.ny // 4:
            raise ValueError("need 1 <= n_provinces <= n_districts <= tiles/4")
        if self.district_layout not in ("even", "clustered"):
            raise ValueError(
                f"district_layout must be even or clustered, got {self.district_layout}"
            )
        if self.n_annotators < 2:
            raise ValueError("need at least 2 annotators (one of them is careless)")
