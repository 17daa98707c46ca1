"""The joined tables every validation and regression figure is computed from.

Each is stored beside its figures (`validation_tiles`, `validation_district_panel`,
`regression_panel`), so anyone can re-run scipy / statsmodels on exactly those rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import pandas as pd

from siscore_assets.core.analysis import regression
from siscore_assets.core.analysis.census_link import MIN_COVERAGE
from siscore_assets.core.analysis.imported import for_year

#: Built-in tile proxies validated against, when the country's `proxies` table has them.
PROXIES = ["building_floor_area_m2", "population", "nightlight"]
#: How districts aggregate a proxy: additive quantities become densities (per km² of ground),
#: intensities are averaged.
DISTRICT_PROXIES = {
    "building_floor_area_m2": ("building_area_density", "density"),
    "population": ("population_density", "density"),
    "nightlight": ("nightlight", "mean"),
}
#: The colour / texture feature-ranker baseline (table `feature_baseline`).
FEATURE_MODEL = "feature_ranker"
#: Seed 004's hyperlocal score: ordinal regression on the soft labels (table `ordinal_baseline`).
ORDINAL_MODEL = "ordinal_regression"
MODEL_KINDS = {
    "siscore": "siscore",
    "siscore_raw": "siscore",
    "nl_regression": "baseline",
    "nl_guided_pog": "baseline",
    "lc_guided_pog": "baseline",
    FEATURE_MODEL: "baseline",
    ORDINAL_MODEL: "baseline",
}
#: A baseline built from a proxy is not validated against that proxy (it would be circular).
SKIP_PAIRS = [("nl_regression", "nightlight"), ("nl_guided_pog", "nightlight")]
#: The paper's guided-POG baseline models (scored in `baseline_scores`).
BASELINE_MODELS = ("nl_guided_pog", "lc_guided_pog")
#: Tiles per side of a ``tile_block`` (4 x 4 zoom-14 tiles, about 10 km): the cluster unit of a
#: regression over too few districts or provinces to cluster on (one district, as PRK's sample).
TILE_BLOCK = 4
#: The `survey_clusters` columns a survey's per-cluster validation reads.
SURVEY_CLUSTER_COLUMNS = ["cluster", "tile_id", "p", "value", "urban"]


def model_kind(name: str) -> str:
    """siscore / baseline / imported."""
    return MODEL_KINDS.get(name, "imported")


def imported_by_name(rows: pd.DataFrame, year: int) -> dict[str, pd.DataFrame]:
    """Each import's rows for the year, by name; an import with no rows that year is still listed
    (empty), so a missing year shows as a model with 0 rows instead of vanishing."""
    if rows.empty:
        return {}
    this_year = for_year(rows, year)
    return {str(n): this_year[this_year["name"] == n] for n in sorted(rows["name"].unique())}


@dataclass
class JoinedTiles:
    """Every tile of a country-year with each model's score (``score_<model>``) and each proxy
    (``proxy_<name>``), the model and proxy names, and per model (rows supplied, unmatched)."""

    frame: pd.DataFrame
    models: list[str] = field(default_factory=list)
    proxies: list[str] = field(default_factory=list)
    supplied: dict[str, tuple[int, int]] = field(default_factory=dict)


def joined_tiles(
    country: str,
    year: int,
    grid: pd.DataFrame,
    patches: pd.DataFrame,
    proxies: pd.DataFrame,
    baselines: pd.DataFrame,
    imported_scores: Mapping[str, pd.DataFrame],
    imported_proxies: Mapping[str, pd.DataFrame],
    features: pd.DataFrame | None = None,
    ordinal: pd.DataFrame | None = None,
) -> JoinedTiles:
    """The exact rows validation runs on.

    Tiles are those of the imagery index (`patches`, cloudy and corrupt included), the scored grid
    and the proxies; imported rows whose tile id is none of these are counted as unmatched.
    ``features``: the `feature_baseline` rows (tile_id, score), when the country has them;
    ``ordinal``: the `ordinal_baseline` rows likewise."""
    keys = ["tile_id", "z", "x", "y"]
    parts = [grid[keys]]
    if not patches.empty:
        parts.append(patches[keys])
    if not proxies.empty:
        parts.append(proxies[keys])
    tiles = pd.concat(parts, ignore_index=True).drop_duplicates("tile_id").reset_index(drop=True)
    frame = tiles.copy()
    frame.insert(0, "year", year)
    frame.insert(0, "country", country)
    status = (
        patches.drop_duplicates("tile_id").set_index("tile_id")["status"]
        if not patches.empty
        else pd.Series(dtype=object)
    )
    frame["status"] = frame["tile_id"].map(status)
    g = grid.set_index("tile_id")
    frame["status"] = frame["status"].where(
        frame["status"].notna() | ~frame["tile_id"].isin(g.index), "ok"
    )
    frame["inhabited"] = frame["tile_id"].map(g["inhabited"]).astype("boolean")
    out = JoinedTiles(frame)

    def add_model(name: str, values: pd.Series) -> None:
        frame[f"score_{name}"] = frame["tile_id"].map(values).astype(float)
        out.models.append(name)
        out.supplied[name] = (
            int(values.notna().sum()),
            int((~values.index.isin(tiles["tile_id"])).sum()),
        )

    add_model("siscore", g["score"])
    if "raw_score" in g.columns:
        add_model("siscore_raw", g["raw_score"])
    if not proxies.empty:
        p = proxies.set_index("tile_id")
        for name in PROXIES:
            if name in p.columns and p[name].notna().any():
                frame[f"proxy_{name}"] = frame["tile_id"].map(p[name]).astype(float)
                out.proxies.append(name)
        if "nightlight" in p.columns and p["nightlight"].notna().any():
            add_model("nl_regression", p["nightlight"])  # the paper's NL-regression: VIIRS itself
    for name in BASELINE_MODELS:
        rows = baselines[baselines["model"] == name] if not baselines.empty else baselines
        if len(rows):
            add_model(name, rows.set_index("tile_id")["score"])
    if features is not None and not features.empty:
        add_model(FEATURE_MODEL, features.set_index("tile_id")["score"])
    if ordinal is not None and not ordinal.empty:
        add_model(ORDINAL_MODEL, ordinal.set_index("tile_id")["score"])
    for name, rows in imported_scores.items():
        add_model(name, rows.set_index("tile_id")["score"])
    for name, rows in imported_proxies.items():
        frame[f"proxy_{name}"] = (
            frame["tile_id"].map(rows.set_index("tile_id")["value"]).astype(float)
        )
        out.proxies.append(str(name))
    return out


def district_panel(
    agg: pd.DataFrame,
    models: list[str],
    proxies: list[str],
    district_how: Mapping[str, str],
    coverage: pd.Series | None = None,
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The district rows regressed: mean score per model, and per proxy a density per km² of
    ground (additive quantities) or a mean (intensities; ``district_how`` for imports).
    ``coverage`` (by district id, :func:`districts.aggregate_coverage`): a density is the tiles' sum
    over the district's whole area, so it is left empty where the tiles hold under
    ``MIN_COVERAGE`` of the district (an AOI cutting it); means need no whole.
    Returns the panel and (proxy, panel column) pairs."""
    panel = agg[["district_id", "n_tiles", "area_km2"]].copy()
    whole = np.ones(len(panel), bool)
    if coverage is not None:
        panel["coverage"] = panel["district_id"].map(coverage).astype(float)
        whole = (panel["coverage"] >= MIN_COVERAGE).to_numpy()
    for m in models:
        panel[m] = agg[f"score_{m}_mean"]
    district_proxies = []
    for q in proxies:
        name, how = DISTRICT_PROXIES.get(q, (f"{q}_density", district_how.get(q, "density")))
        if how == "mean":
            name = q
        panel[name] = (
            (agg[f"proxy_{q}_sum"] / agg["area_km2"]).where(whole)
            if how == "density"
            else agg[f"proxy_{q}_mean"]
        )
        district_proxies.append((q, name))
    return panel, district_proxies


def skip_pairs(guided: str | None = None) -> list[tuple[str, str]]:
    """(model, proxy) pairs never validated: a baseline built from a proxy, and siScore
    against the proxy (or survey) a data-guided annotator ranked its clusters by
    (``models.guided_annotator``): its figure would partly measure its own training data."""
    extra = [(m, guided) for m in ("siscore", "siscore_raw")] if guided else []
    return [*SKIP_PAIRS, *extra]


def district_skip_pairs(guided: str | None = None) -> list[tuple[str, str]]:
    """:func:`skip_pairs` with each proxy named as its district panel column."""
    return [
        (m, DISTRICT_PROXIES[q][0] if q in DISTRICT_PROXIES else q) for m, q in skip_pairs(guided)
    ]


def regression_panel(
    first: pd.DataFrame,
    last: pd.DataFrame,
    covariates: pd.DataFrame,
    districts: pd.DataFrame,
    proxies_first: pd.DataFrame | None = None,
    proxies_last: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per tile scored in both years and inhabited in either: outcomes, covariates,
    district controls — the exact rows the regressions use (less rows with missing values)."""
    df = first[["tile_id", "score", "inhabited"]].merge(
        last[["tile_id", "score", "inhabited"]], on="tile_id", suffixes=("_first", "_last")
    )
    df = df[
        df["inhabited_first"].fillna(False).astype(bool)
        | df["inhabited_last"].fillna(False).astype(bool)
    ]
    df["delta_log_siscore"] = regression.delta_log(df["score_last"], df["score_first"])
    df["siscore_up"] = (df["score_last"] > df["score_first"]).astype(float)
    pa, pb = proxies_first, proxies_last
    if (
        pa is not None
        and pb is not None
        and not pa.empty
        and not pb.empty
        and "nightlight" in pa.columns
    ):
        nl = pa[["tile_id", "nightlight"]].merge(
            pb[["tile_id", "nightlight"]], on="tile_id", suffixes=("_first", "_last")
        )
        df = df.merge(nl, on="tile_id", how="left")
        df["delta_log_nightlight"] = regression.delta_log(
            df["nightlight_last"], df["nightlight_first"], regression.NIGHTLIGHT_EPS
        )
        # NaN unless both years have a value, so model (4) runs on the tiles model (2) does
        df["nightlight_up"] = (
            (df["nightlight_last"] > df["nightlight_first"])
            .astype(float)
            .where(df["nightlight_last"].notna() & df["nightlight_first"].notna())
        )
    df = df.merge(
        covariates.drop(columns=["country", "z", "x", "y"], errors="ignore"),
        on="tile_id",
        how="left",
    )
    dist = districts.copy()
    for col in ("population", "area_km2"):
        if col not in dist.columns:
            dist[col] = np.nan  # a district layer without the attribute: that control is left out
    controls = dist[["district_id", "population", "area_km2"]].rename(
        columns={"population": "district_population", "area_km2": "district_area_km2"}
    )
    df = df.merge(controls, on="district_id", how="left")
    df["log_district_population"] = np.log1p(df["district_population"].astype(float))
    df["log_district_area"] = np.log(df["district_area_km2"].astype(float))
    for c in [c for c in df.columns if c.startswith("dist_") and c.endswith("_km")]:
        with np.errstate(
            divide="ignore", invalid="ignore"
        ):  # the paper's log distances; 0 km -> dropped
            df[f"log_{c}"] = np.log(df[c].astype(float)).replace(-np.inf, np.nan)
    if {"x", "y"} <= set(covariates.columns):
        xy = covariates.set_index("tile_id")[["x", "y"]]
        bx = df["tile_id"].map(xy["x"]) // TILE_BLOCK
        by = df["tile_id"].map(xy["y"]) // TILE_BLOCK
        df["tile_block"] = bx.astype("Int64").astype(str) + "_" + by.astype("Int64").astype(str)
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]):
            df[c] = df[c].astype(float)
    return df.reset_index(drop=True)


def regression_design(
    panel: pd.DataFrame, wanted: list[str]
) -> tuple[list[str], list[str], str | None]:
    """The regressors that vary in the panel (plus the district controls, where the panel spans
    enough districts), those left out (absent from the panel: no layer gives them; constant over
    it; too few districts; or collinear with the terms before them), and the fixed effect
    (province, when the panel spans several)."""
    regs = [
        r for r in wanted if r in panel.columns and panel[r].astype(float).nunique(dropna=True) > 1
    ]
    # a district control needs districts to vary over: over one it is the intercept again, over
    # a few (one tile's centre across a border) a dummy of those tiles, whose clustered inference
    # calls null effects significant; left out under MIN_CLUSTERS_EACH_SIDE districts, reported
    districts = panel["district_id"].nunique() if "district_id" in panel.columns else 0
    controls = [
        c
        for c in ("log_district_population", "log_district_area")
        if panel[c].nunique(dropna=True) > 1 and districts >= regression.MIN_CLUSTERS_EACH_SIDE
    ]
    fe = "province" if "province" in panel.columns and panel["province"].nunique() > 1 else None
    kept = _independent(panel, regs + controls, fe)
    dropped = [
        r
        for r in dict.fromkeys([*wanted, "log_district_population", "log_district_area"])
        if r not in kept
    ]
    return kept, dropped, fe


def _independent(panel: pd.DataFrame, terms: list[str], fe: str | None) -> list[str]:
    """``terms`` in order, each kept only if it adds rank to the intercept, the fixed-effect
    dummies and the terms kept before it (on the rows where every term is finite)."""
    rows = panel[terms].astype(float).replace([np.inf, -np.inf], np.nan).dropna().index
    cols = [np.ones(len(rows))]
    if fe is not None:
        dummies = pd.get_dummies(panel.loc[rows, fe], drop_first=True, dtype=float)
        cols += [dummies[c].to_numpy() for c in dummies.columns]
    kept = []
    for t in terms:
        trial = np.column_stack([*cols, panel.loc[rows, t].astype(float).to_numpy()])
        if len(rows) and np.linalg.matrix_rank(trial) == trial.shape[1]:
            cols.append(trial[:, -1])
            kept.append(t)
    return kept


def validation_grid_table(
    joined: JoinedTiles,
    country: str,
    year: int,
    seed: int,
    survey: tuple[str, pd.DataFrame] | None = None,
    guided: str | None = None,
) -> pd.DataFrame:
    """`validation_grid`: Spearman rho with a bootstrap CI of every model against every proxy,
    over all tiles and over inhabited tiles, each pair on every tile with both values and the
    others counted by reason.  ``survey`` (its proxy name, its `survey_clusters` rows of the
    year): that proxy's rows are per cluster instead (:func:`survey_cluster_rows`).
    ``guided``: the proxy a data-guided annotator ranked by (left out for siScore)."""
    from siscore_assets.core.analysis import validation

    parts = []
    skip = [(f"score_{m}", f"proxy_{q}") for m, q in skip_pairs(guided)]
    scores = [f"score_{m}" for m in joined.models]
    tile_proxies = [q for q in joined.proxies if survey is None or q != survey[0]]
    for subset, keep in (("all", None), ("inhabited", "inhabited")):
        t = validation.grid_validation(
            joined.frame,
            scores,
            [f"proxy_{q}" for q in tile_proxies],
            seed=seed,
            keep_col=keep,
            skip_pairs=skip,
        )
        if survey is not None and survey[0] in joined.proxies:
            rows = survey_cluster_rows(joined, *survey, keep, seed, skip)
            t = pd.concat([t, rows], ignore_index=True)
            order = {
                (s, f"proxy_{q}"): i for i, (s, q) in enumerate(product(scores, joined.proxies))
            }
            t = t.iloc[np.argsort([order[k] for k in zip(t["model"], t["proxy"])], kind="stable")]
            t = t.reset_index(drop=True)
        t.insert(0, "subset", subset)
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table["model"] = table["model"].str.removeprefix("score_")
    table["proxy"] = table["proxy"].str.removeprefix("proxy_")
    table.insert(3, "model_kind", table["model"].map(model_kind))
    table["score_rows"] = table["model"].map(lambda m: joined.supplied[m][0])
    table["score_unmatched"] = table["model"].map(lambda m: joined.supplied[m][1])
    table["n_boot"] = validation.DEFAULT_BOOT
    table.insert(0, "year", year)
    table.insert(0, "country", country)
    return table


def survey_cluster_rows(
    joined: JoinedTiles,
    name: str,
    clusters: pd.DataFrame,
    keep_col: str | None,
    seed: int,
    skip: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """The survey's `validation_grid` rows, one observation per cluster: Spearman rho (and its
    p) of the clusters' values against their expected scores (:func:`surveys.cluster_scores`,
    over the tiles with ``keep_col`` True), the CI resampling clusters; ``n`` is the clusters
    used, ``dropped_no_score`` those whose scored tiles hold under half of where they may be.
    The tiles a displaced cluster is spread over share its one value, so counting them as
    observations would make p and the CI far too confident.  ``skip``: the (score, proxy)
    column pairs left out, as :func:`validation_grid_table` built them."""
    from siscore_assets.core.analysis import surveys, validation

    scores = [f"score_{m}" for m in joined.models]
    rows = clusters if not clusters.empty else pd.DataFrame(columns=SURVEY_CLUSTER_COLUMNS)
    per = surveys.cluster_scores(rows, joined.frame, scores, keep_col=keep_col)
    per[f"proxy_{name}"] = per["value"].astype(float)
    return validation.grid_validation(
        per, scores, [f"proxy_{name}"], seed=seed, status_col=None, skip_pairs=skip
    )
