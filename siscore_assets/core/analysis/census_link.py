"""siScore on a census's scale: a tile's score as people, so that a change is counted in people.

A rank-trained score is any increasing function of development: its ranks are what the POGs
fix, its scale is not.  Levels do not care (they are compared by rank), but a *change* does: a
delta is counted in score points, and a score point is not the same amount of development
everywhere (on SYN the score is close to linear in log floor area, so a point at a dense place
is far more floor area: docs/change.md).  A census fixes the scale.  With district head counts,
the link

    people(s) = k * expm1(beta * s) / beta        (beta -> 0: k * s, the score itself)

is fitted so that a district's sum of ``people`` over its tiles matches its population: least
squares on the logs over the districts that hold scored tiles, ``k`` in closed form for each
``beta``, ``beta`` searched on [0, :data:`BETA_MAX`].  The family is increasing, 0 at score 0
(an uninhabited tile holds nobody) and contains the linear link, so the census chooses between
"a score point is worth the same everywhere" (beta = 0) and "worth more where it is high"; the
log residual of both is reported.  The district model of seed 004 sums scores times a district
factor for the same reason; here one link holds for the whole country, so a tile's delta is
comparable across districts.

Only district totals of one census year are used: never a tile's truth, a proxy or a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from siscore_assets.core.analysis import districts as districts_lib

#: The steepest link searched: a score of 1 is then worth e^30 times a score near 0, beyond any
#: census's resolution.
BETA_MAX = 30.0
#: A link fitted on fewer districts (with scored tiles and a population) is not trusted.
MIN_DISTRICTS = 5
#: A district whose tiles cover less of it (an AOI that cuts it, cloudy or blank tiles left
#: out) would be fitted against people living outside the tiles: left out.
MIN_COVERAGE = 0.8
_GRID = np.linspace(0.0, BETA_MAX, 121)  # coarse search first: the fit has no other start


class CensusLinkError(ValueError):
    """A census that cannot fix the scale: says why."""


def link_values(beta: float, scores: np.ndarray) -> np.ndarray:
    """``expm1(beta * s) / beta`` (``s`` itself at beta 0): increasing, 0 at 0, slope 1 at 0."""
    s = np.asarray(scores, dtype=float)
    return np.expm1(beta * s) / beta if beta > 1e-9 else s


@dataclass(frozen=True)
class CensusLink:
    """A fitted link: ``people(scores)`` maps siScores to people."""

    year: int
    beta: float
    people_per_unit: float  # k
    districts: int
    districts_partial: int  # left out: their tiles cover under MIN_COVERAGE of them
    log_rmse: float  # the districts' log residual under the link
    log_rmse_linear: float  # ... under the best linear link (beta = 0)

    def people(self, scores: np.ndarray, inhabited: np.ndarray | None = None) -> np.ndarray:
        """People of each score; 0 where ``inhabited`` (that year's habitation verdict) is
        False, as a score kept for the place (``zero_filter: false``) is not people; NaN (no
        score) stays NaN."""
        s = np.asarray(scores, dtype=float)
        if inhabited is not None:
            s = np.where(np.asarray(inhabited, dtype=bool) | np.isnan(s), s, 0.0)
        return self.people_per_unit * link_values(self.beta, s)

    def as_row(self) -> dict:
        return asdict(self)


def _profile(beta: float, scores: np.ndarray, district: np.ndarray, log_pop: np.ndarray, n: int):
    """(sum of squared log residuals, log k) of the districts for ``beta`` (every district holds
    a tile scored above 0, so its sum is positive): log k is the mean gap, the least-squares
    intercept."""
    gap = log_pop - np.log(np.bincount(district, link_values(beta, scores), minlength=n))
    log_k = float(gap.mean())
    return float(((gap - log_k) ** 2).sum()), log_k


def fit_census_link(
    scores: np.ndarray,
    district: np.ndarray,
    population: np.ndarray,
    year: int,
    coverage: np.ndarray | None = None,
) -> CensusLink:
    """Fit :class:`CensusLink` to one year's tile ``scores`` (0 where uninhabited), each tile's
    ``district`` (an index into ``population``; -1 outside every district) and the districts'
    ``population`` (NaN or <= 0: not counted); ``coverage``: the share of each district its
    tiles cover (below :data:`MIN_COVERAGE`: left out)."""
    s = np.asarray(scores, dtype=float)
    d = np.asarray(district, dtype=np.int64)
    pop = np.asarray(population, dtype=float)
    cov = np.ones(len(pop)) if coverage is None else np.asarray(coverage, dtype=float)
    if s.shape != d.shape:
        raise ValueError(f"{len(s)} scores for {len(d)} district indices")
    if np.nanmin(s, initial=0.0) < 0 or np.nanmax(s, initial=0.0) > 1:
        raise CensusLinkError(
            f"scores of {year} outside [0, 1] ({np.nanmin(s):.3g} to {np.nanmax(s):.3g}): the "
            "link is for siScores (an imported score file may use another range)"
        )
    counted = np.isfinite(pop) & (pop > 0)
    scored = np.zeros(len(pop), bool)
    inside = (d >= 0) & (d < len(pop)) & np.isfinite(s) & (s > 0)
    scored[np.unique(d[inside])] = True
    whole = cov >= MIN_COVERAGE
    use = counted & scored & whole
    partial = int((counted & scored & ~whole).sum())
    if use.sum() < MIN_DISTRICTS:
        raise CensusLinkError(
            f"{int(use.sum())} district(s) hold scored tiles and a population in {year} with "
            f"{MIN_COVERAGE:.0%} of their area in tiles ({partial} more only partly covered): a "
            f"census link needs {MIN_DISTRICTS} or more"
        )
    keep = inside & use[np.clip(d, 0, len(pop) - 1)]
    codes = np.cumsum(use) - 1  # the used districts renumbered 0..m-1
    sd, dd, m = s[keep], codes[d[keep]], int(use.sum())
    log_pop = np.log(pop[use])

    def cost(beta: float) -> float:
        return _profile(beta, sd, dd, log_pop, m)[0]

    grid = np.array([cost(b) for b in _GRID])
    i = int(grid.argmin())
    lo, hi = _GRID[max(i - 1, 0)], _GRID[min(i + 1, len(_GRID) - 1)]
    best = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    beta = float(best.x) if best.fun < grid[i] else float(_GRID[i])
    sse, log_k = _profile(beta, sd, dd, log_pop, m)
    return CensusLink(
        year=int(year),
        beta=beta,
        people_per_unit=float(np.exp(log_k)),
        districts=m,
        districts_partial=partial,
        log_rmse=float(np.sqrt(sse / m)),
        log_rmse_linear=float(np.sqrt(grid[0] / m)),
    )


def add_people(
    table: pd.DataFrame,
    link: CensusLink | None,
    inhabited: Mapping[int, pd.Series],
    labels: tuple[str, ...] = ("prev", "base"),
) -> pd.DataFrame:
    """`siscore_change` rows with ``people`` (the tile's score in people; 0 where that year's
    verdict is not inhabited: a score kept for the place, ``zero_filter: false``, is not people)
    and, per reference ``label``, ``delta_people_<label>`` (the change in people since that
    year): NaN without a link, so every partition has the same columns.  ``inhabited``: per
    year, each tile id's verdict (a missing year or tile counts as not inhabited).  A change is
    significant or not on the score's own scale: the link is increasing, so the people's change
    has the score's sign, except at a tile whose verdict changed between the years."""
    out = table.copy()
    if link is None:
        out["people"] = np.nan
        for label in labels:
            out[f"delta_people_{label}"] = np.nan
        return out

    def people(score_col: str, year_col: str) -> np.ndarray:
        years = out[year_col].to_numpy()
        mask = np.zeros(len(out), bool)
        for y in pd.unique(years[pd.notna(years)]):
            verdict = inhabited.get(int(y), pd.Series(dtype=bool))
            rows = years == y
            mask[rows] = verdict.reindex(out.loc[rows, "tile_id"]).fillna(False).to_numpy(bool)
        return link.people(out[score_col].to_numpy(dtype=float), mask)

    now = people("score", "year")
    out["people"] = now
    for label in labels:
        out[f"delta_people_{label}"] = now - people(f"score_{label}", f"{label}_year")
    return out


def fit_from_grid(grid: pd.DataFrame, districts_gdf, year: int) -> tuple[CensusLink, int]:
    """:func:`fit_census_link` on one year's ``siscore_grid`` rows (z, x, y, score, inhabited)
    and the district layer (its ``population``): each tile's district by its centre, each
    district's coverage by the grid's tiles, people only on tiles the year's verdict calls
    inhabited.  Returns the link and the number of tiles outside every district."""
    where = districts_lib.tile_districts(grid, districts_gdf)
    cover = districts_lib.tile_coverage(where, districts_gdf, int(grid["z"].iloc[0]))
    pop = pd.to_numeric(districts_gdf["population"], errors="coerce").to_numpy(dtype=float)
    inhabited = grid["inhabited"].fillna(False).to_numpy(dtype=bool)
    score = np.where(inhabited, grid["score"].to_numpy(dtype=float), 0.0)
    return fit_census_link(score, where, pop, year, coverage=cover), int((where < 0).sum())
