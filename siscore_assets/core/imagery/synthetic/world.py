"""The synthetic country ``SYN``: a deterministic, offline stand-in for real imagery.

Why it exists: the whole pipeline (tiling, clustering, POGs, scorer, validation, regression)
must run end to end in minutes without network access, and the validation stage needs ground
truth that real countries lack.  :class:`SyntheticCountry` ties the parts of this package
together: the year-independent geography (``geography``), the latent development field it
grows each year, the tile renderer that makes that development *visible* (``render``), and the
tables derived from the very same built fraction the renderer draws — per-tile truth (floor
area, population, nightlights), districts, points of interest and regional covariates.

Everything is a pure function of :class:`SyntheticSpec`; randomness is keyed per tile
(``seed, stream, x, y``), so a tile looks the same whatever block it is rendered in, and the
same place in different years keeps its land cover and layout — growth only adds buildings.
"""

from __future__ import annotations

import math
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint, Point, box

from siscore_assets.core.imagery.grid import Tile, block_bounds_3857, tiles_in_block
from siscore_assets.core.imagery.synthetic.geography import (
    Seat,
    build_geography,
    growth,
    urban_components,
)
from siscore_assets.core.imagery.synthetic.noise import built_fraction, floors_for
from siscore_assets.core.imagery.synthetic.render import TileRenderer
from siscore_assets.core.imagery.synthetic.spec import (
    EDZ_RADIUS_KM,
    NEAR_MINE_KM,
    NIGHTLIGHT_MAX,
    NIGHTLIGHT_THRESHOLD,
    SETTLED,
    URBAN_THRESHOLD,
    SyntheticSpec,
)
from siscore_assets.core.imagery.synthetic.training import (
    make_pretrain_set,
    simulate_pog_lines,
    simulated_annotator_names,
)

_EARTH_CIRCUMFERENCE_M = 40075016.685578488
_M2_PER_PERSON = 60.0  # gross floor area (homes, work, services) per resident


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
        self._geo = build_geography(s, self._row, self._col)
        self._sites = self._geo.sites

    # -- development and imagery ----------------------------------------------------------------
    def development(self, year: int) -> np.ndarray:
        """(ny, nx) latent development in [0, 1]; 0 exactly where nobody lives."""
        year = int(year)
        if year not in self._dev_cache:
            geo = self._geo
            t, _ = growth(self.spec.years, year)
            urban = urban_components(self._sites, self._row, self._col, self.spec.years, year)
            village = geo.village * (1 + 0.01 * t)
            dev = 1.0 - (1.0 - urban) * (1.0 - village)
            dev = np.clip(dev * (1.0 + 0.06 * geo.dev_noise), 0.03, 1.0)
            self._dev_cache[year] = np.where(geo.land_cover == SETTLED, dev, 0.0)
        return self._dev_cache[year].copy()

    def land_cover(self) -> np.ndarray:
        """(ny, nx) int: 0 water, 1 forest, 2 bare mountain, 3 settled (farmland, towns)."""
        return self._geo.land_cover.copy()

    def tile_images(self, year: int) -> np.ndarray:
        """(ny*nx, P, P, 3) uint8 tiles in row-major order (same order as :meth:`tile_truth`)."""
        return self.counterfactual_images(year, year)

    def counterfactual_images(self, built_year: int, scene_year: int) -> np.ndarray:
        """The tiles as built in ``built_year``, seen in ``scene_year``'s scene (season, crop
        rotation, clouds, sensor noise, the year's nuisance): what separates a score change owed
        to new buildings from one owed to the year (``benchmarks/change_ablation.py``)."""
        built = built_fraction(self.development(built_year)).ravel()
        return self.renderer.render(
            self._keys, self._geo.land_cover.ravel(), built, np.full(len(self._keys), scene_year),
            noise_seed=int(scene_year), highways=self._highways,
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
        for rd in self._sites.roads:
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

    # -- ground truth -----------------------------------------------------------------------------
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
        geo = self._geo
        dev = self.development(year)
        built = built_fraction(dev)
        share = self.renderer.building_share(self._keys, built.ravel()).reshape(dev.shape)
        floor = share * self._tile_area_m2 * floors_for(built) * geo.fa_noise
        floor = np.where(dev > 0, floor, 0.0)
        pop = np.round(floor / _M2_PER_PERSON * geo.pp_noise)
        nl = NIGHTLIGHT_MAX * (1 - np.exp(-np.clip(dev - NIGHTLIGHT_THRESHOLD, 0, None) / 0.25))
        yr = np.random.default_rng([self.spec.seed, 21, int(year)])
        nl = nl * geo.nl_noise * np.exp(yr.normal(0, 0.05, dev.shape))
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
        items = [*self._sites.seats, *self._sites.specials]
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
        s, seats = self.spec, self._sites.seats
        frame = box(*self.bounds_3857)
        seeds = [Point(*self._to_3857(st.col, st.row)) for st in seats]
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
        for i, st in enumerate(seats):
            g = geoms[i]
            lat = np.degrees(2 * np.arctan(np.exp(g.centroid.y / 6378137.0)) - np.pi / 2)
            out.append(
                {
                    "district_id": i,
                    "name": st.name,
                    "province_id": st.province,
                    "province": self._sites.province_names[st.province],
                    "population": int(pop.get(i, 0)),
                    "area_km2": g.area * math.cos(math.radians(lat)) ** 2 / 1e6,
                    "geometry": g,
                }
            )
        return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:3857")

    @cached_property
    def _tile_district(self) -> np.ndarray:
        seats = self._sites.seats
        d = np.stack([np.hypot(self._row - st.row, self._col - st.col) for st in seats])
        return np.argmin(d, axis=0)

    def tile_covariates(self) -> pd.DataFrame:
        """Per-tile regional features for the regressions (distances in ground km).

        ``dist_provincial_km``: to the nearest provincial-level seat (capital included);
        ``dist_county_km``: to the nearest district seat of any level.
        """
        seats, specials = self._sites.seats, self._sites.specials
        x, y = self._to_3857(self._col, self._row)

        def nearest(items: list[Seat]) -> tuple[np.ndarray, np.ndarray]:
            ds = np.stack([self._km_between(x, y, *self._to_3857(it.col, it.row)) for it in items])
            return ds.min(axis=0), ds.argmin(axis=0)

        cap, _ = nearest(seats[:1])
        prov, _ = nearest(seats[: self.spec.n_provinces])
        county, _ = nearest(seats)
        edz = [sp for sp in specials if sp.kind == "edz"]
        d_edz, which = nearest(edz)
        d_mine, _ = nearest([sp for sp in specials if sp.kind == "mine"])
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
        prov_id = np.array([st.province for st in seats])[dist]
        df["province_id"] = prov_id.ravel().astype(np.int64)
        df["province"] = [self._sites.province_names[p] for p in prov_id.ravel()]
        return df

    # -- training material (see ``training``) ---------------------------------------------------
    def pretrain_set(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Images from the country's own renderer at random draws, with 4-vote soft labels.

        Labels are (urban, rural, uninhabited) fractions in quarters, as four people looking
        at the tile would vote: confident far from the class boundaries, split near them.
        """
        return make_pretrain_set(self.renderer, self.spec, n, seed)

    def simulate_annotators(
        self, cluster_development: dict[int, float], seed: int
    ) -> dict[str, str]:
        """Per-annotator POG lines (most developed first) from clusters' mean true development.

        Careful annotators see the truth with small noise and tie near-equal clusters; one is
        careless (large noise, random swaps); one or two leave a cluster out (incomparable).
        Clusters with development <= 0 (the uninhabited cluster) sit alone at the bottom.
        """
        return simulate_pog_lines(self.spec.n_annotators, cluster_development, seed)

    def annotator_names(self, seed: int) -> list[str]:
        """The names :meth:`simulate_annotators` gives with this seed."""
        return simulated_annotator_names(self.spec.n_annotators, seed)
