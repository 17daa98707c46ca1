"""`siscore_grid` of an analysis-only country (``source: {kind: score_file, file: ...}``): the
year's rows of the score file, checked like the scorer's own rows, instead of a scorer's output.
A bad file (an id off the grid, a duplicated tile-year, a non-numeric score) fails naming the
file and row before anything is written (``core/analysis/score_source.py``)."""

from dagster import MaterializeResult, MetadataValue

from siscore_assets.core.analysis import score_source
from siscore_assets.core.countries import CountryConfig

from ..common.resources import Warehouse
from .checks import unit_interval_check


def score_file_grid(warehouse: Warehouse, country: CountryConfig, year: int) -> MaterializeResult:
    """Write the country-year's `siscore_grid` from its score file (streamed, checked whole)."""
    keys = {"country": country.code, "year": year}
    frame = score_source.country_year_scores(country, year)
    frame.insert(0, "year", year)
    frame.insert(0, "country", country.code)
    check = unit_interval_check(frame)
    if not check.passed:  # nothing is written: maps and validation would read broken scores
        return MaterializeResult(
            metadata={"status": "rejected", "rows_written": 0}, check_results=[check]
        )
    n = warehouse.write("siscore_grid", frame, keys)
    scores, inhabited = frame["score"].to_numpy(), frame["inhabited"].to_numpy(bool)
    return MaterializeResult(
        metadata={
            "tiles": n,
            "status": "ok",
            "source": MetadataValue.path(
                str(country.score_file(year if country.source.is_raster else None))
            ),
            "mean_score": float(scores.mean()) if n else float("nan"),
            "inhabited_mean_score": float(scores[inhabited].mean())
            if inhabited.any()
            else float("nan"),
        },
        check_results=[check],
    )
