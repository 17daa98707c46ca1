"""District indicators from tile scores: the multi-level model of seed 004.

Statistics (population, income, energy use) come per district, not per tile.  The model predicts
a district's indicator as the sum of its tiles' hyperlocal scores times a district scaling
factor, ``y_i = sum_d f(d) * exp(g(r_i))``, where ``r_i`` is a fixed-length summary of the
district's tiles (score mean, spread, quantiles, log of the score sum and tile count, and the
mean / spread of PCA-reduced tile embeddings when there are any).  As in the paper (its Eq. 14),
``g`` is fitted to ``ln(y_i / sum_d f(d))``; here ``g`` is a ridge regression on standardised
features (closed form, no tuning: a fixed penalty), so 100 splits take seconds.  *District-union
augmentation* adds merged pairs of training districts (features recomputed from the pooled tiles,
labels summed): N labelled districts give up to N + N(N-1)/2 examples.

Evaluation follows the paper: R² in the indicator's original scale (and Spearman) on the held-out
20 % of 100 seeded 80/20 splits, against baselines fitted on the same training districts: OLS on
the sum and on the mean of the score, on the nightlight sum where a proxy exists, and a ridge on
the same features without the multiplicative form.  Every method is fitted and evaluated on the
same labelled districts: those with a positive value and scored tiles on enough of them
(:data:`LEFT_OUT` says why the others are not, and they are counted).  Everything here is pure
numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from siscore_assets.core.analysis.census_link import MIN_COVERAGE
from siscore_assets.core.analysis.districts import tile_districts

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
FLOOR = 1e-3  # added to every tile score: a district of uninhabited tiles still has a scale
MIN_TEST = 3  # a held-out set smaller than this gives no R²
METHODS = ("multilevel", "multilevel_no_augmentation", "ridge_features", "sum_score", "mean_score")
NIGHTLIGHT = "nightlight_sum"
#: Why a labelled district is left out of fitting and evaluation, checked in this order: a value
#: <= 0 (ln(y / S) needs a positive indicator), no scored tile in the indicator year (S = 0: ln 0
#: would turn the whole ridge into NaN), or scored tiles on under MIN_COVERAGE of it (as
#: `census_link`: its value counts what lies outside the tiles).
LEFT_OUT = {
    "value_not_positive": "a value <= 0",
    "no_tiles": "no scored tile",
    "low_coverage": f"under {MIN_COVERAGE:.0%} of its tiles scored",
}


class IndicatorInputError(ValueError):
    """A target or label set the district model cannot use; one line naming what is wrong."""


@dataclass(frozen=True)
class DistrictTiles:
    """A country's tiles grouped by district: the one input every step reads.

    ``district`` (n,) int district ids per tile, ``score`` (n,) tile scores, ``embedding``
    (n, k) reduced embeddings or None; ``ids`` the districts in order (tile-less ones too)."""

    ids: np.ndarray
    district: np.ndarray
    score: np.ndarray
    embedding: np.ndarray | None = None
    _members: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_frame(
        cls,
        tiles: pd.DataFrame,
        ids: Sequence[int],
        score: str = "score",
        embedding: Sequence[str] = (),
    ) -> DistrictTiles:
        """From tile rows with ``district_id`` and ``score`` (NaN scores are dropped)."""
        ok = tiles["district_id"].notna() & np.isfinite(tiles[score].to_numpy(float))
        t = tiles[ok]
        emb = t[list(embedding)].to_numpy(float) if embedding else None
        return cls(
            np.asarray(ids, dtype=np.int64),
            t["district_id"].to_numpy(np.int64),
            np.clip(t[score].to_numpy(float), 0.0, None),
            emb,
        )

    def members(self, did: int) -> np.ndarray:
        if not self._members:
            order = np.argsort(self.district, kind="stable")
            keys, starts = np.unique(self.district[order], return_index=True)
            for k, part in zip(keys, np.split(order, starts[1:]), strict=True):
                self._members[int(k)] = part
        return self._members.get(int(did), np.empty(0, np.int64))

    def pooled(self, dids: Sequence[int]) -> np.ndarray:
        return np.concatenate([self.members(d) for d in dids]) if dids else np.empty(0, np.int64)

    def score_sum(self, rows: np.ndarray) -> float:
        return float(np.sum(self.score[rows] + FLOOR))

    def features(self, rows: np.ndarray) -> np.ndarray:
        """The fixed-length summary r of a set of tiles (a district or a union of districts)."""
        s = self.score[rows]
        n = len(s)
        if n == 0:
            base = [0.0, 0.0, *([0.0] * len(QUANTILES)), np.log(FLOOR), 0.0]
        else:
            qs = np.quantile(s, QUANTILES)
            base = [s.mean(), s.std(), *qs, np.log(np.sum(s + FLOOR)), np.log(n)]
        if self.embedding is None:
            return np.asarray(base, float)
        e = self.embedding[rows]
        k = self.embedding.shape[1]
        mu = e.mean(axis=0) if n else np.zeros(k)
        sd = e.std(axis=0) if n else np.zeros(k)
        return np.concatenate([base, mu, sd])

    def feature_names(self) -> list[str]:
        names = ["score_mean", "score_std", *(f"score_q{int(q * 100)}" for q in QUANTILES)]
        names += ["log_score_sum", "log_n_tiles"]
        k = 0 if self.embedding is None else self.embedding.shape[1]
        return names + [f"emb{j}_mean" for j in range(k)] + [f"emb{j}_std" for j in range(k)]


def assign_tiles(grid: pd.DataFrame, districts_gdf: gpd.GeoDataFrame) -> pd.Series:
    """Each tile's district by the rule of ``aggregate_by_district`` (the interior holding its
    centre; the first in layer order when several do), indexed by ``tile_id``; tiles in none are
    left out."""
    tiles = grid[["tile_id", "z", "x", "y"]].drop_duplicates("tile_id")
    where = tile_districts(tiles, districts_gdf)
    ids = districts_gdf["district_id"].to_numpy()[where[where >= 0]].astype(np.int64)
    return pd.Series(
        ids,
        index=pd.Index(tiles["tile_id"].to_numpy()[where >= 0], name="tile_id"),
        name="district_id",
    ).sort_index()


def pca_basis(x: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(mean, (k, D) components) of embeddings ``x``: fitted on a sample, applied batch by batch
    (``(e - mean) @ components.T``), so a 400,000-tile year is never held whole."""
    x = np.asarray(x, float)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return mean, vt[: min(k, vt.shape[0])]


def pca_reduce(x: np.ndarray, k: int = 3) -> np.ndarray:
    """Embeddings reduced to ``k`` principal components (the paper keeps 3, ~80 % variance)."""
    mean, comp = pca_basis(x, k)
    return (np.asarray(x, float) - mean) @ comp.T


class Ridge:
    """Ridge regression on standardised features with an unpenalised intercept (closed form)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Ridge:
        w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
        w = w * len(y) / w.sum()  # the penalty keeps its meaning whatever the weights' scale
        self.mean_ = np.average(x, axis=0, weights=w)
        sd = np.sqrt(np.average((x - self.mean_) ** 2, axis=0, weights=w))
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        z = (x - self.mean_) / self.scale_
        self.intercept_ = float(np.average(y, weights=w))
        a = (z * w[:, None]).T @ z + self.alpha * np.eye(z.shape[1])
        self.coef_ = np.linalg.solve(a, (z * w[:, None]).T @ (y - self.intercept_))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept_ + ((x - self.mean_) / self.scale_) @ self.coef_


class MultiLevel:
    """``y = S(D) * exp(g(r(D)))`` with ``S`` the floored score sum and ``g`` a ridge fitted to
    ``ln(y / S)``, on the labelled districts plus (``augment``) unions of pairs of them; the
    unions weigh ``union_weight`` times the labelled districts in all, so they regularise the
    fit instead of outvoting the districts that were observed."""

    def __init__(
        self,
        alpha: float = 1.0,
        augment: bool = True,
        max_pairs: int = 2000,
        seed: int = 0,
        union_weight: float = 0.25,
    ) -> None:
        self.alpha, self.augment, self.max_pairs, self.seed = alpha, augment, max_pairs, seed
        self.union_weight = union_weight

    def fit(
        self, data: DistrictTiles, dids: np.ndarray, y: np.ndarray, cache: dict | None = None
    ) -> MultiLevel:
        cache = {} if cache is None else cache
        dids, y = np.asarray(dids), np.asarray(y, float)
        if not (y > 0).all():  # not dropped here: they would stay in the held-out R²
            raise IndicatorInputError(
                f"ln(y / S) needs positive targets; {int((~(y > 0)).sum())} are <= 0 or NaN "
                "(leave them out first: fitting_targets)"
            )
        rows = [_example(data, (int(d),), cache) for d in dids]
        ys, w = list(y), [1.0] * len(y)
        if self.augment and len(dids) > 1:
            pairs = _pairs(len(dids), self.max_pairs, self.seed)
            for i, j in pairs:
                rows.append(_example(data, (int(dids[i]), int(dids[j])), cache))
                ys.append(y[i] + y[j])
            w += [self.union_weight * len(y) / len(pairs)] * len(pairs)
        x = np.stack([r[0] for r in rows])
        s = np.array([r[1] for r in rows])
        self.g_ = Ridge(self.alpha).fit(x, np.log(np.asarray(ys)) - np.log(s), np.asarray(w))
        self.n_examples_ = len(rows)
        return self

    def scaling(self, data: DistrictTiles, dids: Sequence[int], cache: dict | None = None):
        """(exp g, S) per district: the scaling factor and the floored score sum."""
        cache = {} if cache is None else cache
        ex = [_example(data, (int(d),), cache) for d in dids]
        x = np.stack([e[0] for e in ex])
        return np.exp(self.g_.predict(x)), np.array([e[1] for e in ex])

    def predict(self, data: DistrictTiles, dids: Sequence[int], cache: dict | None = None):
        factor, s = self.scaling(data, dids, cache)
        return s * factor


def _example(data: DistrictTiles, dids: tuple[int, ...], cache: dict) -> tuple[np.ndarray, float]:
    key = tuple(sorted(dids))
    if key not in cache:
        rows = data.pooled(list(key))
        cache[key] = (data.features(rows), data.score_sum(rows))
    return cache[key]


def _pairs(n: int, max_pairs: int, seed: int) -> list[tuple[int, int]]:
    """All pairs of ``n`` when there are at most ``max_pairs``, else a seeded sample of them."""
    i, j = np.triu_indices(n, 1)
    if len(i) > max_pairs:
        pick = np.sort(np.random.default_rng([seed, 4004]).choice(len(i), max_pairs, replace=False))
        i, j = i[pick], j[pick]
    return list(zip(i.tolist(), j.tolist(), strict=True))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """R² in the original scale: 1 - SSE / SST (negative when worse than the mean)."""
    sst = float(np.sum((y - y.mean()) ** 2))
    return float(1 - np.sum((y - pred) ** 2) / sst) if sst > 0 else float("nan")


def _ols(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    a = np.column_stack([np.ones(len(x_train)), x_train])
    coef, *_ = np.linalg.lstsq(a, y_train, rcond=None)
    return np.column_stack([np.ones(len(x_test)), x_test]) @ coef


def labelled_targets(
    districts: pd.DataFrame, target: str, n_splits: int, test_fraction: float, where: str
) -> pd.Series:
    """The target's finite values by district id; a column absent or empty, or too few labelled
    districts for the splits, is one line naming ``where`` (the layer) and the column."""
    if target not in districts.columns:
        cols = ", ".join(c for c in districts.columns if c not in ("geometry", "geometry_wkb"))
        raise IndicatorInputError(f"{where}: no district column {target!r} (columns: {cols})")
    y = pd.to_numeric(districts[target], errors="coerce")
    y.index = districts["district_id"].to_numpy(np.int64)
    y = y[np.isfinite(y)]
    if y.empty:
        raise IndicatorInputError(f"{where}: district column {target!r} has no numeric value")
    need = needed_districts(n_splits, test_fraction)
    if len(y) < need:
        raise IndicatorInputError(
            f"{where}: {len(y)} district(s) with a value in {target!r}; {n_splits} splits holding "
            f"out {test_fraction:.0%} need at least {need}"
        )
    return y


def needed_districts(n_splits: int, test_fraction: float) -> int:
    """Labelled districts the splits need: at least MIN_TEST held out, and as many trained."""
    return max(2 * MIN_TEST, int(np.ceil(MIN_TEST / test_fraction))) if n_splits else 2


def fitting_targets(
    y: pd.Series,
    n_tiles: pd.Series,
    coverage: pd.Series | None,
    *,
    n_splits: int,
    test_fraction: float,
    where: str,
    target: str,
    year: int,
) -> tuple[pd.Series, dict[str, list[int]]]:
    """The labelled districts (``y``, by id) the model is fitted and evaluated on, and those
    left out per reason of :data:`LEFT_OUT` (``n_tiles``: scored tiles per district id in the
    indicator year; ``coverage``: the share of each district's tiles scored then, None: not
    checked).  Every method is evaluated on the same districts, so the held-out R² never
    scores a district the model could not be fitted on; too few left for the splits is one
    line naming ``where``, the reasons and the first ids."""
    tiles = n_tiles.reindex(y.index).fillna(0).to_numpy()
    cover = np.ones(len(y)) if coverage is None else coverage.reindex(y.index).to_numpy(float)
    bad = {
        "value_not_positive": ~(y.to_numpy(float) > 0),
        "no_tiles": tiles == 0,
        "low_coverage": ~(np.nan_to_num(cover, nan=0.0) >= MIN_COVERAGE),
    }
    left_out, taken = {}, np.zeros(len(y), bool)
    for reason, hit in bad.items():
        left_out[reason] = [int(d) for d in y.index[hit & ~taken]]
        taken |= hit
    kept = y[~taken]
    need = needed_districts(n_splits, test_fraction)
    if len(kept) < need:
        why = ", ".join(
            f"{len(ids)} with {LEFT_OUT[r]}{_ids(ids)}" for r, ids in left_out.items() if ids
        )
        raise IndicatorInputError(
            f"{where}: {len(kept)} of {len(y)} labelled district(s) in {target!r} can be fitted "
            f"on {year}'s tiles ({why}); {n_splits} splits holding out {test_fraction:.0%} need "
            f"at least {need}"
        )
    return kept, left_out


def _ids(ids: list[int], show: int = 5) -> str:
    more = ", ..." if len(ids) > show else ""
    return f" (ids {', '.join(map(str, ids[:show]))}{more})" if ids else ""


@dataclass
class Evaluation:
    """Per split and method: R² (original scale) and Spearman on the held-out districts; and
    each labelled district's mean held-out prediction of the multi-level model."""

    splits: pd.DataFrame
    cv_prediction: pd.Series

    def summary(self) -> pd.DataFrame:
        g = self.splits.groupby("method", sort=False)
        return pd.DataFrame(
            {
                "r2_mean": g["r2"].mean(),
                "r2_sd": g["r2"].std(),
                "r2_median": g["r2"].median(),
                "spearman_mean": g["spearman"].mean(),
                "splits": g["r2"].count(),
            }
        ).reset_index()


def evaluate(
    data: DistrictTiles,
    y: pd.Series,
    n_splits: int = 100,
    test_fraction: float = 0.2,
    seed: int = 0,
    alpha: float = 1.0,
    max_pairs: int = 2000,
    nightlight: pd.Series | None = None,
    union_weight: float = 0.25,
) -> Evaluation:
    """The model and its baselines over ``n_splits`` seeded 80/20 splits of the labelled
    districts ``y`` (by district id); ``nightlight`` (sum per district) adds that baseline."""
    dids = y.index.to_numpy(np.int64)
    yv = y.to_numpy(float)
    cache: dict = {}
    feats = np.stack([_example(data, (int(d),), cache)[0] for d in dids])
    ssum = np.array([_example(data, (int(d),), cache)[1] for d in dids])
    mean = feats[:, 0]
    nl = None if nightlight is None else nightlight.reindex(dids).fillna(0.0).to_numpy(float)
    n_test = max(MIN_TEST, int(round(test_fraction * len(dids))))
    rows, cv = [], {int(d): [] for d in dids}
    for split in range(n_splits):
        perm = np.random.default_rng([seed, 2020, split]).permutation(len(dids))
        te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        preds = {}
        for name, aug in (("multilevel", True), ("multilevel_no_augmentation", False)):
            m = MultiLevel(alpha, aug, max_pairs, seed + split, union_weight)
            m.fit(data, dids[tr], yv[tr], cache)
            preds[name] = m.predict(data, dids[te], cache)
        preds["ridge_features"] = Ridge(alpha).fit(feats[tr], yv[tr]).predict(feats[te])
        preds["sum_score"] = _ols(ssum[tr], yv[tr], ssum[te])
        preds["mean_score"] = _ols(mean[tr], yv[tr], mean[te])
        if nl is not None:
            preds[NIGHTLIGHT] = _ols(nl[tr], yv[tr], nl[te])
        for d, p in zip(dids[te], preds["multilevel"], strict=True):
            cv[int(d)].append(float(p))
        for name, p in preds.items():
            rho = spearmanr(yv[te], p).statistic if np.ptp(p) > 0 else float("nan")
            rows.append(
                {
                    "split": split,
                    "method": name,
                    "r2": r2(yv[te], p),
                    "spearman": float(rho),
                    "n_train": len(tr),
                    "n_test": len(te),
                }
            )
    cvp = pd.Series({d: float(np.mean(v)) if v else np.nan for d, v in cv.items()})
    return Evaluation(pd.DataFrame(rows), cvp)


def gini(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The Gini index of non-negative values (optionally weighted): 0 equal, 1 one holds all."""
    v = np.asarray(values, float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, float)
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    v, w = np.clip(v[ok], 0, None), w[ok]
    if len(v) == 0 or np.sum(v * w) <= 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cw = np.cumsum(w) / np.sum(w)
    cv = np.cumsum(v * w) / np.sum(v * w)
    prev = np.concatenate([[0.0], cv[:-1]])
    dw = np.diff(np.concatenate([[0.0], cw]))
    return float(1 - np.sum(dw * (cv + prev)))


@dataclass
class IndicatorResult:
    """Everything the `district_indicators` asset writes, one frame per table."""

    districts: pd.DataFrame  # per district: value, labelled, prediction, cv_prediction, scaling
    splits: pd.DataFrame  # per split and method: r2, spearman
    tiles: pd.DataFrame  # per tile-year: score, adjusted_score = (score + floor) * scaling
    gini: pd.DataFrame  # per year and level: Gini of tile scores, adjusted scores, districts
    left_out: dict[str, int] = field(default_factory=dict)  # labelled, not fitted: per reason

    def left_out_line(self) -> str:
        """The labelled districts not fitted, per reason, as one metadata line."""
        return ", ".join(f"{n} with {LEFT_OUT[r]}" for r, n in self.left_out.items()) or "none"


def run(
    tiles_by_year: Mapping[int, pd.DataFrame],
    districts: pd.DataFrame,
    target: str,
    year: int,
    *,
    n_splits: int = 100,
    test_fraction: float = 0.2,
    seed: int = 0,
    alpha: float = 1.0,
    augment: bool = True,
    union_weight: float = 0.25,
    nightlight: pd.Series | None = None,
    embedding: pd.DataFrame | None = None,
    where: str = "districts",
    coverage: pd.Series | None = None,
    tile_sink: Callable[[pd.DataFrame], object] | None = None,
) -> IndicatorResult:
    """The district model for one target: evaluated over the splits on ``year``'s tiles (the
    indicator's year), refitted on every fitted district, then applied to every district and
    tile of every year (``tiles_by_year``: tile_id, district_id, score).  Tiles are read per
    year; only per-district summaries are kept across years.  ``embedding`` (tile_id, e0..ek:
    reduced embeddings of the indicator year's tiles) adds their mean and spread to the features,
    for every year alike (a tile without one counts as the mean, 0).  ``coverage`` (by district
    id: the share of its tiles scored in ``year``): labelled districts are fitted and evaluated
    only where it is high enough, they have a scored tile and a positive value
    (:func:`fitting_targets`); the others are still predicted, and counted in ``left_out``.
    ``tiles_by_year`` may read a year when asked (a year is asked for once, the indicator year
    twice); with ``tile_sink`` each year's tile rows go there as they are made and the result's
    ``tiles`` is empty, so no more than one year's tiles are held at a time."""
    labelled = labelled_targets(districts, target, n_splits, test_fraction, where)
    emb_cols = [c for c in embedding.columns if c != "tile_id"] if embedding is not None else []

    def year_frame(yr: int) -> pd.DataFrame:
        frame = tiles_by_year[yr]
        if not emb_cols:
            return frame
        return frame.merge(embedding, on="tile_id", how="left").fillna({c: 0.0 for c in emb_cols})

    ids = districts["district_id"].to_numpy(np.int64)
    if year not in tiles_by_year:
        raise IndicatorInputError(f"{where}: indicator year {year} has no scored tiles")
    base = DistrictTiles.from_frame(year_frame(year), ids, embedding=emb_cols)
    n_tiles = pd.Series(base.district).value_counts()
    y, left_out = fitting_targets(
        labelled, n_tiles, coverage, n_splits=n_splits, test_fraction=test_fraction,
        where=where, target=target, year=year,
    )  # fmt: skip
    ev = evaluate(
        base, y, n_splits, test_fraction, seed, alpha, nightlight=nightlight,
        union_weight=union_weight,
    )  # fmt: skip
    model = MultiLevel(alpha, augment, seed=seed, union_weight=union_weight)
    model.fit(base, y.index.to_numpy(np.int64), y.to_numpy(float))
    tiles_out, gini_rows, per_district = [], [], None
    for yr in sorted(tiles_by_year):
        frame = year_frame(yr)
        data = base if yr == year else DistrictTiles.from_frame(frame, ids, embedding=emb_cols)
        factor, ssum = model.scaling(data, ids)
        pred = pd.DataFrame({"district_id": ids, "scaling": factor, "score_sum": ssum})
        # a district the year's grid holds no tile of is unknown, not 0 (a zero also pulled the
        # districts' Gini towards 1 where the imagery covers a few districts of many)
        seen = pd.Series(ids).isin(frame["district_id"].dropna().astype(np.int64)).to_numpy()
        pred["prediction"] = np.where(seen, factor * ssum, np.nan)
        if yr == year:
            per_district = pred
        scale = pd.Series(factor, index=ids)
        t = frame[["tile_id", "district_id", "score"]].copy()
        t["adjusted_score"] = (t["score"].clip(lower=0) + FLOOR) * t["district_id"].map(scale)
        t.insert(0, "year", yr)
        if tile_sink is None:
            tiles_out.append(t)
        else:
            tile_sink(t)
        for level, values in (
            ("tiles_score", t["score"]),
            ("tiles_adjusted", t["adjusted_score"]),
            ("districts_predicted", pred["prediction"]),
        ):
            gini_rows.append({"year": yr, "level": level, "gini": gini(values.to_numpy(float))})
    out = per_district.copy()
    out["value"] = out["district_id"].map(labelled)
    out["labelled"] = out["value"].notna()
    out["fitted"] = out["district_id"].isin(y.index)  # labelled and not left out
    out["cv_prediction"] = out["district_id"].map(ev.cv_prediction)
    out["n_tiles"] = out["district_id"].map(n_tiles).fillna(0).astype(np.int64)
    out["coverage"] = np.nan if coverage is None else out["district_id"].map(coverage)
    tiles = pd.concat(tiles_out, ignore_index=True) if tiles_out else pd.DataFrame()
    return IndicatorResult(out, ev.splits, tiles,
                           pd.DataFrame(gini_rows),
                           {r: len(v) for r, v in left_out.items()})  # fmt: skip
