"""SYN as an analysis-only country: export a warehouse's SYN `siscore_grid` as a score file, read
it back with `core/analysis/score_source.py`, recompute `district_siscore` (every year) and the
Table 1 `development_regression` as the assets do, and compare with the warehouse's own rows.
Prints whether each is identical and the largest absolute difference.  Run:
`python -m benchmarks.score_file_roundtrip WAREHOUSE [OUT.csv]` (a `make demo` warehouse).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd

from siscore_assets.core.analysis import districts as districts_lib
from siscore_assets.core.analysis import reports, score_source
from siscore_assets.core.countries import load_countries


def _same(want: pd.DataFrame, got: pd.DataFrame) -> tuple[bool, float]:
    got = got[want.columns].astype(want.dtypes.to_dict()).reset_index(drop=True)
    want = want.reset_index(drop=True)
    num = [c for c in want.columns if want[c].dtype.kind == "f"]
    diff = float(np.nanmax(np.abs(want[num].to_numpy() - got[num].to_numpy()))) if num else 0.0
    return want.equals(got), diff


def main() -> None:
    db = sys.argv[1]
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / "syn.csv"
    country = load_countries().get("SYN")
    years = list(country.years)
    with duckdb.connect(db, read_only=True) as con:

        def q(sql: str) -> pd.DataFrame:
            return con.execute(sql).df()

        grids = [
            q(f"SELECT * FROM siscore_grid WHERE country = 'SYN' AND year = {y}") for y in years
        ]
        dist = q("SELECT * FROM districts WHERE country = 'SYN'")
        cov = q("SELECT * FROM covariates WHERE country = 'SYN'")
        prox = {y: q(f"SELECT * FROM proxies WHERE country = 'SYN' AND year = {y}") for y in years}
        stored = {
            y: q(f"SELECT * FROM district_siscore WHERE country = 'SYN' AND year = {y} "
                 "ORDER BY district_id").drop(columns=["country", "year"])
            for y in years
        }  # fmt: skip
        reg = q("SELECT * FROM development_regression WHERE country = 'SYN' ORDER BY model, term")
    pd.concat(grids)[["tile_id", "year", "score"]].to_csv(out, index=False, float_format="%.17g")
    print(f"exported {sum(map(len, grids))} tile-years to {out}")
    read = {y: score_source.read_year(out, y, zoom=country.zoom, years=years) for y in years}
    geom = gpd.GeoSeries.from_wkb(dist["geometry_wkb"].map(bytes), crs="EPSG:3857")
    layer = gpd.GeoDataFrame(dist.drop(columns=["geometry_wkb"]), geometry=geom)
    for y in years:
        agg = districts_lib.aggregate_by_district(read[y], ["score"], layer, id_col="district_id")
        same, diff = _same(stored[y], agg.sort_values("district_id"))
        print(f"district_siscore {y}: identical={same} max_abs_diff={diff:.3g}")
    rs = country.regression
    first, last = rs.first_year or years[0], rs.last_year or years[-1]
    result = reports.development_regression(
        read[first], read[last], cov, dist, prox[first], prox[last],
        regressors=rs.regressors, cluster=rs.cluster,
        keys={"country": "SYN", "first_year": first, "last_year": last}, country="SYN",
    )  # fmt: skip
    same, diff = _same(reg, result.table.sort_values(["model", "term"]))
    print(f"development_regression: {len(reg)} rows, identical={same} max_abs_diff={diff:.3g}")


if __name__ == "__main__":
    main()
