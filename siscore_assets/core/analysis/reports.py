"""The figures the output assets report, computed from the joined tables in :mod:`panels`: the
headline validation number and the paper's Table 1 regressions over two years."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from siscore_assets.core.analysis import panels, regression
from siscore_assets.core.countries import CountryConfigError

#: The headline pair of `validation_grid`: siScore against building floor area, all tiles.
HEADLINE = {"model": "siscore", "proxy": "building_floor_area_m2", "subset": "all"}


def building_rho(table: pd.DataFrame) -> float | None:
    """Spearman rho of siScore against building floor area over all tiles (the
    ``tracks_building_area`` check's number); None when the table has no such row."""
    pick = table[
        (table["model"] == HEADLINE["model"])
        & (table["proxy"] == HEADLINE["proxy"])
        & (table["subset"] == HEADLINE["subset"])
    ]
    return float(pick["spearman_rho"].iloc[0]) if len(pick) else None


@dataclass
class RegressionResult:
    """Table 1 (one row per model and term, the keys first) and the panel it was fitted on;
    the regressors left out of the design and the fixed effects used (None: none)."""

    table: pd.DataFrame
    panel: pd.DataFrame
    dropped: list[str]
    fixed_effects: str | None

    @property
    def without_layer(self) -> list[str]:
        """Regressors left out because the panel has no such column."""
        return [r for r in self.dropped if r not in self.panel.columns]


def development_regression(
    first_grid: pd.DataFrame,
    last_grid: pd.DataFrame,
    covariates: pd.DataFrame,
    districts: pd.DataFrame,
    first_proxies: pd.DataFrame | None,
    last_proxies: pd.DataFrame | None,
    *,
    regressors: Sequence[str],
    cluster: str,
    keys: Mapping[str, Any],
    country: str = "",
) -> RegressionResult:
    """The paper's Table 1 between two years: the regression panel, its design (regressors that
    can be estimated, fixed effects), then OLS with SEs clustered by ``cluster`` for every
    Table-1 outcome the panel has.  ``keys`` (country, first / last year) become the first
    columns of both tables."""
    panel = panels.regression_panel(
        first_grid, last_grid, covariates, districts, first_proxies, last_proxies
    )
    regs, dropped, fe = panels.regression_design(panel, list(regressors))
    if cluster not in panel.columns:
        raise CountryConfigError(
            f"country {country}: regression.cluster {cluster!r} is not a column of the "
            "regression panel (district_id, province or tile_block)"
        )
    tables = []
    for model, outcome, _ in regression.TABLE1_MODELS:
        if outcome not in panel.columns or panel[outcome].notna().sum() == 0:
            continue
        t = regression.ols_clustered(panel, outcome, regs, cluster, fixed_effects=fe)
        t.insert(0, "model", model)
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    for frame in (table, panel):
        for i, (k, v) in enumerate(keys.items()):
            frame.insert(i, k, v)
    return RegressionResult(table, panel, list(dropped), fe)
