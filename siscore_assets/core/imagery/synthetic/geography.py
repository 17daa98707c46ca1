"""The year-independent geography of the synthetic country, built once per spec.

Terrain (a meandering river with a tributary, a lake, rolling hills), district seats spread
over the lowland, roads joining them, special places (economic development zones, mines, a
nuclear site) and the land cover that follows; plus :func:`urban_components`, how those places
turn into development in a given year.  Everything is drawn from one RNG stream
``(seed, 1)`` in a fixed order, so the order of the steps below is part of the country.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from siscore_assets.core.imagery.synthetic.noise import seg_dist, sigmoid, smooth_noise
from siscore_assets.core.imagery.synthetic.spec import (
    EDZ_TYPES,
    FOREST,
    MOUNTAIN,
    SETTLED,
    WATER,
    SyntheticSpec,
)

_TARGET_SETTLED = 0.37  # share of tiles that are inhabited (settled land)

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


@dataclass
class Seat:
    """A named place: a district seat (capital, provincial or county hub) or a special site."""

    kind: str
    name: str
    col: float  # tile units, from the block's left edge
    row: float  # tile units, from the block's top edge
    edz_type: str | None = None
    province: int = -1


@dataclass
class Sites:
    """Where development comes from: district seats, special places and the roads between seats."""

    seats: list[Seat]  # capital, then the other provincial hubs, then county hubs
    province_names: list[str]  # indexed by Seat.province
    roads: list[list[tuple[float, float]]]  # (col, row) polylines between seats
    d_road: np.ndarray  # (ny, nx) distance from each tile centre to the nearest road, tile units
    specials: list[Seat]  # EDZs, mines, the nuclear site
    rscale: float  # size of urban footprints relative to a 40 x 40 country


@dataclass
class Geography:
    """Everything about the country that does not change with the year; arrays are (ny, nx)."""

    sites: Sites
    elev: np.ndarray  # standardised elevation
    land_cover: np.ndarray  # int: WATER, FOREST, MOUNTAIN, SETTLED
    village: np.ndarray  # baseline development of villages on farmland
    dev_noise: np.ndarray  # smooth noise modulating development
    fa_noise: np.ndarray  # fixed per-tile factors of the truth table: floor area ...
    pp_noise: np.ndarray  # ... population ...
    nl_noise: np.ndarray  # ... and nightlight


def polyline_dist(col: np.ndarray, row: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Distance (tile units) from every tile centre to a polyline given as (col, row) points."""
    d = np.full(row.shape, np.inf)
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        d = np.minimum(d, seg_dist(col, row, tuple(a), tuple(b)))
    return d


def growth(years: tuple[int, ...], year: int) -> tuple[float, float]:
    """(years since the first year clipped to the span, fraction of the span)."""
    span = max(1, years[-1] - years[0])
    t = float(np.clip(year - years[0], 0, 1.5 * span))
    return t, t / span


def urban_components(
    sites: Sites, row: np.ndarray, col: np.ndarray, years: tuple[int, ...], year: int
) -> np.ndarray:
    """Soft union of all non-village development sources for a year (before masking)."""
    t, f = growth(years, year)
    g = 1.0 + 0.025 * t
    sr = sites.rscale
    comps = []
    footprint = {"capital": (0.97, 3.0), "provincial_hub": (0.72, 1.9), "county_hub": (0.45, 1.0)}
    for st in sites.seats:
        peak, rad = footprint[st.kind]
        d = np.hypot(row - st.row, col - st.col)
        comps.append(peak * np.exp(-((d / (rad * sr * g)) ** 1.6)))
    comps.append(0.12 * (1 + 0.02 * t) * np.exp(-((sites.d_road / 0.7) ** 2)))
    for sp in sites.specials:
        d = np.hypot(row - sp.row, col - sp.col)
        if sp.kind == "edz":
            peak, rad = 0.12 + 0.62 * f, (0.6 + 0.7 * f) * max(sr, 0.7)
            comps.append(peak * np.exp(-((d / rad) ** 2)))
        elif sp.kind == "mine":
            comps.append(0.22 * np.exp(-((d / 0.6) ** 2)))
        else:
            comps.append(0.3 * np.exp(-((d / 0.5) ** 2)))
    return 1.0 - np.prod([1.0 - c for c in comps], axis=0)


def build_geography(spec: SyntheticSpec, row: np.ndarray, col: np.ndarray) -> Geography:
    """The geography of ``spec``; ``row``, ``col``: (ny, nx) tile-centre coordinates in tiles."""
    rng = np.random.default_rng([spec.seed, 1])
    ny, nx = spec.ny, spec.nx
    size = math.sqrt(nx * ny)
    elev, water, habit, d_water = _terrain(rng, row, col, size)
    land = ~water
    sites = _place_sites(rng, spec, row, col, land, elev, habit, d_water)

    # settled land: all urban footprints plus the most habitable land (valleys, road sides)
    final = urban_components(sites, row, col, spec.years, spec.years[-1])
    forced = land & (final >= 0.18)
    score = (
        habit
        + 2.5 * final
        + 0.6 * np.exp(-sites.d_road / 1.5)
        + 0.25 * rng.standard_normal((ny, nx))
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
    mscore = elev + 0.4 * smooth_noise(rng, (ny, nx), size / 12)
    cut = np.quantile(mscore[rest], 0.55) if rest.any() else 0.0
    lc = np.full((ny, nx), FOREST, np.int64)
    lc[water] = WATER
    lc[rest & (mscore > cut)] = MOUNTAIN
    lc[settled] = SETTLED
    village = 0.05 + 0.1 * sigmoid(1.5 * smooth_noise(rng, (ny, nx), size / 14))
    dev_noise = smooth_noise(rng, (ny, nx), size / 20)
    return Geography(
        sites=sites,
        elev=elev,
        land_cover=lc,
        village=village,
        dev_noise=dev_noise,
        fa_noise=np.exp(rng.normal(0, 0.05, (ny, nx))),
        pp_noise=np.exp(rng.normal(0, 0.15, (ny, nx))),
        nl_noise=np.exp(rng.normal(0, 0.08, (ny, nx))),
    )


def _meander(
    rng: np.random.Generator, start: tuple[float, float], end: tuple[float, float], amp: float
) -> np.ndarray:
    """A river course from ``start`` to ``end`` ((col, row) points) swinging by ``amp``."""
    tt = np.linspace(0, 1, 80)
    k = rng.uniform(1.0, 2.5)
    ph = rng.uniform(0, 2 * np.pi)
    x = start[0] + (end[0] - start[0]) * tt
    y = start[1] + (end[1] - start[1]) * tt
    dx, dy = end[0] - start[0], end[1] - start[1]
    nrm = math.hypot(dx, dy) or 1.0
    off = amp * np.sin(2 * np.pi * k * tt + ph) * np.sin(np.pi * tt) ** 0.3
    return np.stack([x - dy / nrm * off, y + dx / nrm * off], axis=1)


def _terrain(
    rng: np.random.Generator, row: np.ndarray, col: np.ndarray, size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(elevation, water, habitability, distance to river) from a river valley in hills."""
    ny, nx = row.shape
    # a meandering river (plus a tributary) carves a valley through rolling hills
    y_in, y_out = rng.uniform(0.25, 0.75, 2) * ny
    river = _meander(rng, (-1.0, y_in), (nx + 1.0, y_out), 0.12 * ny)
    j = int(rng.integers(20, 60))
    trib_start = (rng.uniform(0.3, 0.7) * nx, -1.0 if rng.random() < 0.5 else ny + 1.0)
    trib = _meander(rng, trib_start, tuple(river[j]), 0.06 * size)
    d_river = polyline_dist(col, row, river)
    d_trib = polyline_dist(col, row, trib)
    d_water = np.minimum(d_river, d_trib)
    hills = smooth_noise(rng, (ny, nx), size / 7) + 0.45 * smooth_noise(rng, (ny, nx), size / 18)
    elev = hills + 2.2 * np.tanh(d_water / (0.28 * size))
    elev = (elev - elev.mean()) / elev.std()
    water = (d_river < 0.62) | (d_trib < 0.42)
    lake_seed = np.unravel_index(np.argmin(np.where(water, np.inf, hills)), hills.shape)
    lake_r = max(1.0, 0.06 * size)
    wobble = 0.5 * lake_r * smooth_noise(rng, (ny, nx), 1.0)
    lake = np.hypot(row - row[lake_seed], col - col[lake_seed]) + wobble < lake_r
    water |= lake
    habit = -elev + 0.3 * smooth_noise(rng, (ny, nx), size / 10)
    return elev, water, habit, d_water


def _site_picker(
    rng: np.random.Generator, land: np.ndarray, row: np.ndarray, col: np.ndarray
) -> Callable[[np.ndarray, list[tuple[float, float]], float, float], tuple[float, float]]:
    """``pick(score, taken, dmin, margin)``: (row, col) of a high-scoring land tile at least
    ``dmin`` from the ``taken`` places and ``margin`` inside the block, slightly jittered."""
    ny, nx = row.shape

    def pick(
        score: np.ndarray, taken: list[tuple[float, float]], dmin: float, margin: float
    ) -> tuple[float, float]:
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

    return pick


def _place_sites(
    rng: np.random.Generator,
    s: SyntheticSpec,
    row: np.ndarray,
    col: np.ndarray,
    land: np.ndarray,
    elev: np.ndarray,
    habit: np.ndarray,
    d_water: np.ndarray,
) -> Sites:
    """Seats on lowland spread apart, roads between them, then the special places."""
    ny, nx = row.shape
    size = math.sqrt(nx * ny)
    sr = float(np.clip(size / 40.0, 0.45, 1.3))
    pick = _site_picker(rng, land, row, col)

    # seats: capital, provincial and county seats on lowland, spread apart
    names = _names(rng, s.n_districts + s.n_provinces + 12)
    seats: list[Seat] = []
    taken: list[tuple[float, float]] = []
    center = -np.hypot(row - ny / 2, col - nx / 2) / size
    r0, c0 = pick(habit + 2.0 * center, taken, 0, 0.2 * min(nx, ny))
    seats.append(Seat("capital", names.pop(0), c0, r0, province=0))
    taken.append((r0, c0))
    for p in range(1, s.n_provinces):
        r1, c1 = pick(habit, taken, 0.45 * size / math.sqrt(s.n_provinces), 1.0)
        seats.append(Seat("provincial_hub", names.pop(0), c1, r1, province=p))
        taken.append((r1, c1))
    if s.district_layout == "clustered":
        for r1, c1 in _clustered_seats(rng, s.n_districts - s.n_provinces, taken, land, row, col):
            seats.append(Seat("county_hub", names.pop(0), c1, r1))
            taken.append((r1, c1))
    for _ in range(s.n_districts - s.n_provinces if s.district_layout == "even" else 0):
        r1, c1 = pick(habit, taken, 0.8 * size / math.sqrt(s.n_districts), 0.5)
        seats.append(Seat("county_hub", names.pop(0), c1, r1))
        taken.append((r1, c1))
    prov_seats = seats[: s.n_provinces]
    for st in seats[s.n_provinces :]:
        st.province = int(
            np.argmin([math.hypot(st.row - p.row, st.col - p.col) for p in prov_seats])
        )
    province_names = [
        f"{'South ' if i % 2 else ''}{p.name}" if i else f"{p.name} Capital"
        for i, p in enumerate(prov_seats)
    ]
    roads, d_road = _roads(rng, seats, s.n_provinces, row, col)

    # special places: economic development zones, mines, a nuclear site
    dist_seat = np.min([np.hypot(row - st.row, col - st.col) for st in seats], axis=0)
    high = elev > np.quantile(elev[land], 0.7)
    specials: list[Seat] = []
    taken_sp = list(taken)

    def near(score, lo, hi, anchor=None):
        dd = dist_seat if anchor is None else np.hypot(row - anchor[0], col - anchor[1])
        for _ in range(6):
            ok = (dd >= lo) & (dd <= hi)
            if ok.any():
                break
            lo, hi = lo * 0.6, hi * 1.5
        return np.where(ok, score, -np.inf)

    pref = {
        "industrial": near(habit + 1.0 * (d_road < 1.5), 2.5 * sr, 5.5 * sr, (r0, c0)),
        "tourism": near(-0.5 * np.abs(d_water - 1.5) + 0.3 * elev, 3 * sr, 9 * sr),
        "agricultural": near(habit, 3 * sr, 9 * sr),
    }
    for et in EDZ_TYPES:
        rr, cc = pick(pref[et], taken_sp, 2.5 * sr, 0.5)
        specials.append(Seat("edz", f"{names.pop(0)} {et.capitalize()} Zone", cc, rr, et))
        taken_sp.append((rr, cc))
    for _ in range(2):
        rr, cc = pick(np.where(high, elev, -np.inf), taken_sp, 3.0 * sr, 0.5)
        specials.append(Seat("mine", f"{names.pop(0)} Mine", cc, rr))
        taken_sp.append((rr, cc))
    rr, cc = pick(
        near(-np.abs(d_water - 1.5) - 0.2 * np.abs(elev), 4 * sr, 12 * sr),
        taken_sp,
        3 * sr,
        0.5,
    )
    specials.append(Seat("nuclear_site", f"{names.pop(0)} Nuclear Research Centre", cc, rr))
    return Sites(seats, province_names, roads, d_road, specials, sr)


def _clustered_seats(
    rng: np.random.Generator,
    n: int,
    hubs: list[tuple[float, float]],
    land: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
) -> list[tuple[float, float]]:
    """``n`` county seats on distinct land tiles, drawn with a density falling off exponentially
    with the distance to the nearest hub: districts are a tile wide in the cities and hundreds
    of tiles in the periphery (sizes over orders of magnitude, as real district layers)."""
    size = math.sqrt(row.size)
    d_hub = np.min([np.hypot(row - r, col - c) for r, c in hubs], axis=0)
    weight = np.where(land, np.exp(-d_hub / (0.09 * size)) + 0.002, 0.0)
    for r, c in hubs:  # a hub's own tile is taken
        weight[int(r), int(c)] = 0.0
    flat = rng.choice(row.size, size=n, replace=False, p=(weight / weight.sum()).ravel())
    jitter = rng.uniform(-0.1, 0.1, (n, 2))
    return [
        (float(row.flat[f] + jr), float(col.flat[f] + jc))
        for f, (jr, jc) in zip(flat, jitter, strict=True)
    ]


def district_indicator(
    population: np.ndarray, area_km2: np.ndarray, seed: int, beta: float = 0.3
) -> np.ndarray:
    """A district statistic with an agglomeration effect (seed 004's power law of cities):
    output per head grows with population density as ``density ** beta``, times 10 % lognormal
    noise; a sum of tile values cannot follow it, a district scaling factor can."""
    pop = np.asarray(population, float)
    density = pop / np.maximum(np.asarray(area_km2, float), 1e-9)
    ref = np.median(density[density > 0]) if np.any(density > 0) else 1.0
    noise = np.exp(np.random.default_rng([seed, 4]).normal(0, 0.1, len(pop)))
    return pop * (np.maximum(density, 1e-9) / ref) ** beta * noise


def _roads(
    rng: np.random.Generator, seats: list[Seat], n_provinces: int, row: np.ndarray, col: np.ndarray
) -> tuple[list[list[tuple[float, float]]], np.ndarray]:
    """Roads from the capital to each provincial seat plus a minimum spanning tree over all
    seats, gently bent; and the (ny, nx) distance from tile centres to the nearest road."""
    pts = [(st.col, st.row) for st in seats]
    edges = {(0, p) for p in range(1, n_provinces)}
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
    d_road = np.full(row.shape, np.inf)
    for rd in roads:
        d_road = np.minimum(d_road, polyline_dist(col, row, np.array(rd)))
    return roads, d_road
