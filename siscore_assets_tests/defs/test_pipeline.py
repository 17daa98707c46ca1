"""End to end on a tiny synthetic country: every asset materialises into DuckDB; partitions are
replaced, never duplicated; bad input fails clearly and leaves earlier partitions intact."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize

from siscore_assets.core.countries import load_countries
from siscore_assets.core.models import colour_stats
from siscore_assets.core.models.common import checkpoint_digest
from siscore_assets.core.ranking import parse_edges, parse_line
from siscore_assets.core.storage import tile_store
from siscore_assets.core.storage.catalog import copy_store
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import ANNOTATORS, country_year_key
from siscore_assets.defs.orchestration.runner import materialize_country, plan_waves
from siscore_assets_tests.conftest import TINY_COUNTRIES, select

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pipeline")]

ALL_ASSETS = [name for wave in plan_waves(build_definitions()) for name in wave.names]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("platform")
    countries = root / "countries.yaml"
    countries.write_text(TINY_COUNTRIES.replace("{missing}", str(root / "no_such_folder")))
    registry = load_countries(countries)
    db = root / "warehouse.duckdb"
    defs = build_definitions(
        registry,
        data_root=str(root / "data"),
        countries_file=str(countries),
        warehouse_path=str(db),
    )
    instance = DagsterInstance.ephemeral()
    report = materialize_country(defs, "SYN", [2016, 2017], instance=instance, log=lambda _: None)
    return SimpleNamespace(defs=defs, root=root, db=db, instance=instance, report=report)


def _q(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql, params or []).df()


def _run(platform: SimpleNamespace, names: list[str], key, raise_on_error: bool = False):
    return materialize(
        list(platform.defs.assets),
        selection=select(*names),
        partition_key=key,
        resources=dict(platform.defs.resources),
        instance=platform.instance,
        raise_on_error=raise_on_error,
    )


def _failure_text(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data is not None
    )


def test_every_asset_materialised_for_every_partition(platform):
    for name in ALL_ASSETS:
        keys = platform.instance.get_materialized_partitions(AssetKey(name))
        assert keys, f"{name} has no materialised partition"
    years = platform.instance.get_materialized_partitions(AssetKey("siscore_grid"))
    assert years == {str(country_year_key("SYN", 2016)), str(country_year_key("SYN", 2017))}


def test_warehouse_follows_the_analyst_contract(platform):
    grid = _q(platform.db, "SELECT * FROM siscore_grid WHERE country = 'SYN'")
    patches = _q(platform.db, "SELECT * FROM patches WHERE country = 'SYN' AND status = 'ok'")
    assert {"country", "year", "tile_id", "z", "x", "y", "score"} <= set(grid.columns)
    assert {"country", "year", "tile_id", "z", "x", "y"} <= set(patches.columns)
    all_tiles = _q(platform.db, "SELECT status FROM patches WHERE country = 'SYN'")
    assert len(all_tiles) == 2 * 14 * 14  # every tile is indexed, usable or not
    assert len(grid) == len(patches) > 0.9 * len(all_tiles)  # usable tiles only are scored
    assert grid["score"].between(0, 1).all()
    assert (
        grid["tile_id"]
        == grid["z"].astype(str) + "/" + grid["x"].astype(str) + "/" + grid["y"].astype(str)
    ).all()
    assert not grid.duplicated(["year", "tile_id"]).any()
    scorer = platform.root / "data" / "SYN" / "models" / "scorer.pt"
    assert set(grid["scorer"]) == {checkpoint_digest(scorer)}  # every row names its model
    val = _q(platform.db, "SELECT * FROM validation_grid WHERE country = 'SYN'")
    assert {"country", "year", "model", "proxy", "n", "spearman_rho"} <= set(val.columns)
    assert set(val["model"]) == {
        "siscore",
        "siscore_raw",
        "nl_regression",
        "nl_guided_pog",
        "lc_guided_pog",
        "feature_ranker",
        "ordinal_regression",
    }
    tiles = val[(val["subset"] == "all") & (val["model"] == "siscore")]
    assert (
        tiles["n"] + tiles["n_dropped"] == 14 * 14
    ).all()  # unscored tiles are counted, not lost
    drops = tiles[[c for c in tiles.columns if c.startswith("dropped_")]].sum(axis=1)
    assert (drops == tiles["n_dropped"]).all()  # and each has its reason
    reg = _q(platform.db, "SELECT * FROM development_regression WHERE country = 'SYN'")
    assert {"term", "coef", "se", "t", "p", "n", "r2", "outcome"} <= set(reg.columns)
    assert reg["n"].min() > 0


def test_feature_baseline_is_the_saved_ranker_on_every_usable_tile(platform):
    ranker = colour_stats.load_feature_ranker(
        platform.root / "data" / "SYN" / "models" / "feature_ranker.json"
    )
    feats = _q(
        platform.db,
        "SELECT * FROM feature_baseline WHERE country = 'SYN' AND year = 2017 ORDER BY tile_id",
    )
    patches = _q(
        platform.db,
        "SELECT tile_id, image_row, stack_path FROM patches WHERE country = 'SYN' "
        "AND year = 2017 AND status = 'ok' ORDER BY tile_id",
    )
    assert feats["tile_id"].tolist() == patches["tile_id"].tolist()
    stack = tile_store.open_stack(patches["stack_path"].iloc[0])
    expected = ranker.score(np.asarray(stack[patches["image_row"].to_numpy()]))
    assert np.allclose(feats["score"], expected) and feats["score"].between(0, 1).all()
    assert feats["score"].std() > 0  # it orders tiles, it is not a constant
    tiles = _q(
        platform.db,
        "SELECT score_feature_ranker FROM validation_tiles WHERE country = 'SYN' AND year = 2017 "
        "AND status = 'ok'",
    )
    assert tiles["score_feature_ranker"].notna().all()


def test_files_written_under_the_data_root(platform):
    data = platform.root / "data" / "SYN"
    assert len(list((data / "granules" / "2016").glob("*.tif"))) == 4
    assert (data / "models" / "scorer.pt").is_file()
    assert (data / "rasters" / "siscore_2017.tif").is_file()
    assert (data / "rasters" / "siscore_2017.png").is_file()
    assert (data / "rasters" / "change_2016_2017.tif").is_file()
    assert (
        len(list((data / "rasters" / "mosaic" / "2017").glob("*.tif"))) == 4
    )  # one overlay per granule
    assert len(list((data / "annotations").glob("*.pog"))) == 5


def test_rematerialising_a_partition_replaces_only_its_rows(platform):
    before = {
        t: _q(platform.db, f"SELECT * FROM {t} ORDER BY ALL")
        for t in ("siscore_grid", "patches", "validation_grid")
    }
    result = _run(
        platform,
        ["patches", "siscore_grid", "validation_grid"],
        country_year_key("SYN", 2017),
        raise_on_error=True,
    )
    assert result.success
    for table, old in before.items():
        new = _q(platform.db, f"SELECT * FROM {table} ORDER BY ALL")
        assert len(new) == len(old), table
        # same seed, same input -> identical rows, in the partition re-run and in the other one
        pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-9)


def test_malformed_annotation_names_file_line_column_and_keeps_rows(platform):
    folder = platform.root / "data" / "SYN" / "annotations"
    before = _q(platform.db, "SELECT * FROM annotator_pogs ORDER BY ALL")
    bad = folder / "zz_bad.pog"
    bad.write_text("1>0\n2==3\n")
    try:  # the new file becomes its own partition; only that partition's run fails
        assert _run(platform, ["annotation_inputs"], "SYN").success
        assert "SYN|zz_bad" in platform.instance.get_dynamic_partitions(ANNOTATORS)
        result = _run(platform, ["annotator_pogs"], "SYN|zz_bad")
    finally:
        bad.unlink()
        assert _run(platform, ["annotation_inputs"], "SYN").success
    assert "SYN|zz_bad" not in platform.instance.get_dynamic_partitions(ANNOTATORS)
    assert not result.success
    assert re.search(r"zz_bad\.pog:2:\d+: .*empty", _failure_text(result)), _failure_text(result)
    pd.testing.assert_frame_equal(
        _q(platform.db, "SELECT * FROM annotator_pogs ORDER BY ALL"), before
    )


def test_year_not_configured_for_a_country_is_no_partition_and_writes_nothing(platform):
    # TWO has only 2017: `TWO|2016` is not a partition key at all, so nothing can run for it
    with pytest.raises(Exception, match=r"TWO\|2016"):
        _run(platform, ["granules"], country_year_key("TWO", 2016), raise_on_error=True)
    assert (
        _q(platform.db, "SELECT count(*) AS n FROM granules WHERE country = 'TWO'")["n"].iloc[0]
        == 0
    )
    assert not (platform.root / "data" / "TWO").exists()


def test_missing_annotation_folder_is_a_clear_error(platform):
    result = _run(platform, ["annotation_inputs"], "NOANN")
    assert not result.success
    assert "annotation folder not found" in _failure_text(result)
    assert "no_such_folder" in _failure_text(result)


def test_unknown_partition_key_is_refused(platform):
    with pytest.raises(Exception, match="XXX"):
        _run(platform, ["granules"], country_year_key("XXX", 2016), raise_on_error=True)


def test_definitions_load_without_warnings(tiny_countries):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        defs = build_definitions(load_countries(tiny_countries), countries_file=str(tiny_countries))
        repo = defs.get_repository_def()
        repo.get_all_jobs()
        assert len(repo.assets_defs_by_key) == len(ALL_ASSETS)
    dagster_warnings = [
        w for w in caught if "dagster" in str(w.filename) or "siscore" in str(w.filename)
    ]
    assert not dagster_warnings, [str(w.message) for w in dagster_warnings]


def test_maps_are_valid_cogs_that_match_the_warehouse(platform):
    import rasterio

    from siscore_assets.core.maps import mosaic
    from siscore_assets.core.maps.rasters import raster_matches_grid, validate_cog

    for y in (2016, 2017):
        grid = _q(platform.db, "SELECT * FROM siscore_grid WHERE country = 'SYN' AND year = ?", [y])
        tif = platform.root / "data" / "SYN" / "rasters" / f"siscore_{y}.tif"
        assert validate_cog(tif)[0]
        check = raster_matches_grid(tif, grid, "score", "inhabited")
        assert check["mismatched"] == 0 and check["valued"] == int(grid["inhabited"].sum())
    files = _q(
        platform.db,
        "SELECT kind, format FROM raster_files WHERE country = 'SYN' AND year = 2017 ORDER BY ALL",
    )
    assert set(files["kind"]) == {
        "siscore",
        "change_base",
    }  # 2016 is both the previous and first year
    for name in ("siscore_raster", "siscore_change"):
        keys = [AssetCheckKey(AssetKey(name), c) for c in ("valid_cog", "pixels_match_tiles")]
        latest = platform.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        assert set(latest) == set(keys)
    mos = _q(
        platform.db,
        "SELECT * FROM mosaic_files WHERE country = 'SYN' AND year = 2017 ORDER BY granule_id",
    )
    assert len(mos) == 4 and (mos["backend"] == "numpy").all() and (mos["tile_px"] == 64).all()
    row = mos.iloc[0]
    grid = _q(platform.db, "SELECT * FROM siscore_grid WHERE country = 'SYN' AND year = 2017")
    with rasterio.open(row["path"]) as src:
        x0, y0 = int(src.tags()["tile_x0"]), int(src.tags()["tile_y0"])
        data = src.read(1)
    expect = mosaic.fill_overlay(mosaic.scores_block(grid, x0, y0, 7, 7, mask_col="inhabited"), 64)
    assert mosaic.compare_overlays(data, expect).identical


def test_guided_pogs_rank_clusters_by_their_proxy_means(platform):
    pogs_t = _q(platform.db, "SELECT * FROM guided_pogs WHERE country = 'SYN' ORDER BY proxy")
    means = _q(platform.db, "SELECT * FROM guided_cluster_means WHERE country = 'SYN'")
    clusters = _q(
        platform.db, "SELECT cluster_id, cluster_group FROM clusters WHERE country = 'SYN'"
    )
    inhabited = set(clusters.loc[clusters["cluster_group"] != "uninhabited", "cluster_id"])
    assert list(pogs_t["proxy"]) == ["building_floor_area_m2", "built_up_share", "nightlight"]
    for row in pogs_t.itertuples():
        pog = parse_line(row.pog_line, known_ids=inhabited)
        assert parse_edges(row.pog_edges) == pog and pog.is_total()
        sub = means[means["proxy"] == row.proxy].set_index("cluster_id")
        assert set(sub.index) == inhabited and sub["guided_score"].between(0, 1).all()
        for a in sub.index:  # the order follows the cluster means
            for b in sub.index:
                if pog.is_less(a, b):
                    assert sub.loc[a, "mean_value"] < sub.loc[b, "mean_value"]
                    assert sub.loc[a, "tier"] < sub.loc[b, "tier"]


def test_guided_baselines_score_tiles_by_the_guided_pogs(platform):
    base = _q(platform.db, "SELECT * FROM baseline_scores WHERE country = 'SYN'")
    means = _q(platform.db, "SELECT * FROM guided_cluster_means WHERE country = 'SYN'")
    pogs_t = _q(platform.db, "SELECT proxy, n_tiers FROM guided_pogs WHERE country = 'SYN'")
    members = _q(
        platform.db, "SELECT year, tile_id, cluster_id FROM cluster_members WHERE country = 'SYN'"
    )
    clusters = _q(
        platform.db, "SELECT cluster_id, cluster_group FROM clusters WHERE country = 'SYN'"
    )
    bottom = int(clusters.loc[clusters["cluster_group"] == "uninhabited", "cluster_id"].max())
    assert set(base["model"]) == {"nl_guided_pog", "lc_guided_pog"}
    for model, proxy in (("nl_guided_pog", "nightlight"), ("lc_guided_pog", "built_up_share")):
        rows = base[base["model"] == model]
        assert len(rows) == len(members) and not rows.duplicated(["year", "tile_id"]).any()
        score_of = means[means["proxy"] == proxy].set_index("cluster_id")["guided_score"]
        inhabited = rows[rows["cluster_id"] != bottom]
        assert np.allclose(
            inhabited["score"], inhabited["cluster_id"].map(score_of), equal_nan=True
        )
        assert (rows.loc[rows["cluster_id"] == bottom, ["score", "tier"]] == 0).all().all()
        n = int(pogs_t.loc[pogs_t["proxy"] == proxy, "n_tiers"].iloc[0])
        assert (rows["n_tiers"] == n + 1).all() and rows["tier"].max() == n


def test_guided_pogs_fail_clearly_on_a_listed_proxy_the_country_lacks(platform):
    text = (platform.root / "countries.yaml").read_text()
    countries = platform.root / "countries_bad_proxy.yaml"
    countries.write_text(
        text.replace(
            "alpha_linearity: 1.0}",
            "alpha_linearity: 1.0, guided_proxies: [nightlight, street_lamps]}",
        )
    )
    before = _q(platform.db, "SELECT * FROM guided_pogs WHERE country = 'SYN' ORDER BY proxy")
    defs = build_definitions(
        load_countries(countries),
        data_root=str(platform.root / "data"),
        countries_file=str(countries),
        warehouse_path=str(platform.db),
    )
    res = materialize(
        list(defs.assets),
        selection=select("guided_pogs"),
        partition_key="SYN",
        resources=dict(defs.resources),
        instance=platform.instance,
        raise_on_error=False,
    )
    assert not res.success and "street_lamps" in _failure_text(res)
    after = _q(platform.db, "SELECT * FROM guided_pogs WHERE country = 'SYN' ORDER BY proxy")
    pd.testing.assert_frame_equal(before, after)  # the earlier partition is intact


def test_guided_pog_joins_the_annotators_when_configured(platform):
    text = (platform.root / "countries.yaml").read_text()
    assert text.count("alpha_linearity: 1.0}") == 1
    countries = platform.root / "countries_guided.yaml"
    countries.write_text(
        text.replace(
            "alpha_linearity: 1.0}",
            "alpha_linearity: 1.0, guided_annotator: nightlight, ensemble_prune: 1}",
        )
    )
    defs = build_definitions(
        load_countries(countries),
        data_root=str(platform.root / "data"),
        countries_file=str(countries),
        warehouse_path=str(platform.db),
    )

    def run(names, key):
        return materialize(
            list(defs.assets),
            selection=select(*names),
            partition_key=key,
            resources=dict(defs.resources),
            instance=platform.instance,
            raise_on_error=False,
        )

    try:  # the guided annotator is one more partition, registered by annotation_inputs
        assert run(["annotation_inputs"], "SYN").success
        assert "SYN|guided_nightlight" in platform.instance.get_dynamic_partitions(ANNOTATORS)
        assert run(["annotator_pogs"], "SYN|guided_nightlight").success
        res = run(["ensemble_pog"], "SYN")
        w = _q(platform.db, "SELECT annotator, weight FROM annotator_weights WHERE country = 'SYN'")
        ens = _q(platform.db, "SELECT * FROM ensemble_pog WHERE country = 'SYN'")
    finally:  # restore the platform's own ensemble for the other tests
        _run(platform, ["annotation_inputs"], "SYN", raise_on_error=True)
        _run(platform, ["ensemble_pog"], "SYN", raise_on_error=True)
    assert "SYN|guided_nightlight" not in platform.instance.get_dynamic_partitions(ANNOTATORS)
    assert res.success, _failure_text(res)
    assert "guided_nightlight" in set(w["annotator"]) and len(w) == 6
    assert ens["pruned"].sum() == 1 and ens.loc[ens["pruned"], "tier"].isna().all()
    assert ens.loc[~ens["pruned"], "tier"].notna().all()


# --- outputs an analyst can trust: the numbers are scipy/statsmodels on the stored joined rows ----


def test_validation_equals_scipy_and_statsmodels_on_the_joined_tables(platform):
    import statsmodels.api as sm
    from scipy import stats

    for year in (2016, 2017):
        tiles = _q(
            platform.db, "SELECT * FROM validation_tiles WHERE country = 'SYN' AND year = ?", [year]
        )
        val = _q(
            platform.db, "SELECT * FROM validation_grid WHERE country = 'SYN' AND year = ?", [year]
        )
        assert len(tiles) == 14 * 14 and len(val) > 20
        for r in val.itertuples():
            rows = (
                tiles if r.subset == "all" else tiles[tiles["inhabited"].fillna(False).astype(bool)]
            )
            pair = rows[[f"score_{r.model}", f"proxy_{r.proxy}"]].dropna()
            assert r.n == len(pair) and r.n + r.n_dropped == len(tiles)
            res = stats.spearmanr(pair.iloc[:, 0], pair.iloc[:, 1])
            assert r.spearman_rho == pytest.approx(res.statistic, abs=1e-12)
            assert r.p_value == pytest.approx(res.pvalue, rel=1e-9, abs=1e-300)
            assert r.ci_low <= r.spearman_rho <= r.ci_high
        panel = _q(
            platform.db,
            "SELECT * FROM validation_district_panel WHERE country = 'SYN' AND year = ?",
            [year],
        )
        dval = _q(
            platform.db,
            "SELECT * FROM validation_district WHERE country = 'SYN' AND year = ?",
            [year],
        )
        assert len(dval) > 10
        for r in dval.itertuples():
            d = panel[[r.model, r.proxy]].dropna()
            fit = sm.OLS(np.log1p(d[r.proxy]), sm.add_constant(d[r.model])).fit()
            assert r.n == len(d) and r.r2 == pytest.approx(fit.rsquared, rel=1e-9)
            assert r.slope == pytest.approx(fit.params.iloc[1], rel=1e-9)


def test_regression_equals_statsmodels_on_the_panel(platform):
    import statsmodels.formula.api as smf

    from siscore_assets.core.analysis.regression import MIN_CLUSTERS_EACH_SIDE

    reg = _q(platform.db, "SELECT * FROM development_regression WHERE country = 'SYN'")
    panel = _q(platform.db, "SELECT * FROM regression_panel WHERE country = 'SYN'")
    # the night-light change is log(1 + light): a dark tile lit is not worth 4.6 log points
    lit = panel.dropna(subset=["nightlight_first", "nightlight_last"])
    np.testing.assert_allclose(
        lit["delta_log_nightlight"],
        np.log1p(lit["nightlight_last"]) - np.log1p(lit["nightlight_first"]),
        rtol=1e-12,
    )
    assert set(reg["model"]) == {"(1)", "(2)", "(3)", "(4)"}
    assert set(reg["outcome"]) == {
        "delta_log_siscore",
        "delta_log_nightlight",
        "siscore_up",
        "nightlight_up",
    }
    assert {"edz_industrial", "edz_tourism", "edz_agricultural", "log_district_population"} <= set(
        reg["term"]
    )
    for (model, outcome), table in reg.groupby(["model", "outcome"]):
        terms = [t for t in table["term"] if t != "const"]
        d = panel[[outcome, *terms, "district_id", "province"]].dropna()
        fe = " + C(province)" if d["province"].nunique() > 1 else ""
        fit = smf.ols(f"{outcome} ~ {' + '.join(terms)}{fe}", data=d).fit(
            cov_type="cluster",
            cov_kwds={"groups": pd.factorize(d["district_id"], sort=True)[0]},
            use_t=True,
        )
        t = table.set_index("term")
        for term in terms:
            assert t.loc[term, "coef"] == pytest.approx(fit.params[term], rel=1e-7, abs=1e-10), (
                model,
                term,
            )
            if t.loc[term, "term_clusters"] < MIN_CLUSTERS_EACH_SIDE:  # no inference: too few
                assert t.loc[term, ["se", "t", "p", "ci_low", "ci_high"]].isna().all()
                continue
            assert t.loc[term, "se"] == pytest.approx(fit.bse[term], rel=1e-7, abs=1e-10), (
                model,
                term,
            )
            assert t.loc[term, "p"] == pytest.approx(fit.pvalues[term], rel=1e-6, abs=1e-12), (
                model,
                term,
            )
        assert (t["n"] == len(d)).all() and t["r2"].iloc[0] == pytest.approx(fit.rsquared, rel=1e-9)


def test_imported_yx_score_csv_flows_through_validation_with_every_tile_counted(
    platform, monkeypatch, tmp_path
):
    """A CSV keyed by `y_x` for 2017 only: 10 scored tiles left out, 3 ids off the grid.  In the
    2017 table the import sits beside siScore with n + dropped = every tile, its unmatched ids
    and supplied rows counted; in 2016 it appears with 0 rows (a missing year, visible)."""
    from scipy import stats
    from typer.testing import CliRunner

    from siscore_assets.cli import app

    grid = _q(
        platform.db,
        "SELECT tile_id, x, y FROM siscore_grid WHERE country = 'SYN' AND year = 2017 "
        "ORDER BY tile_id",
    )
    truth = _q(
        platform.db,
        "SELECT tile_id, building_floor_area_m2 AS b FROM proxies "
        "WHERE country = 'SYN' AND year = 2017",
    )
    keep = grid.iloc[10:].merge(truth, on="tile_id")
    rng = np.random.default_rng(0)
    keep["score"] = np.log1p(keep["b"]) + rng.normal(0, 1.0, len(keep))
    lines = ["tile_id,year,score"] + [f"{r.y}_{r.x},2017,{r.score:.6f}" for r in keep.itertuples()]
    lines += ["1_1,2017,0.5", "2_2,2017,0.4", "3_3,2017,0.3"]  # valid ids, not in this country
    csv = tmp_path / "other_model.csv"
    csv.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("SISCORE_COUNTRIES", str(platform.root / "countries.yaml"))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(platform.root / "data"))
    monkeypatch.setenv("SISCORE_WAREHOUSE", str(platform.db))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    out = CliRunner().invoke(
        app,
        ["scores", "import", str(csv), "--country", "SYN", "--name", "other_model", "--replace"],
    )
    assert out.exit_code == 0, out.output
    for year in (2016, 2017):
        assert _run(platform, ["validation_grid"], country_year_key("SYN", year)).success
    val = _q(
        platform.db, "SELECT * FROM validation_grid WHERE country = 'SYN' AND model = 'other_model'"
    )
    assert set(val["model_kind"]) == {"imported"}
    v17 = val[
        (val["year"] == 2017)
        & (val["subset"] == "all")
        & (val["proxy"] == "building_floor_area_m2")
    ].iloc[0]
    cloudy = int(
        _q(
            platform.db,
            "SELECT count(*) AS n FROM patches WHERE country = 'SYN' AND year = 2017 "
            "AND status = 'cloudy'",
        )["n"].iloc[0]
    )
    assert v17.n == len(keep) and v17.n + v17.n_dropped == 14 * 14
    assert v17.score_rows == len(keep) + 3 and v17.score_unmatched == 3
    assert v17.dropped_no_score + v17.dropped_cloudy + v17.dropped_unusable == 14 * 14 - len(keep)
    assert v17.dropped_no_score >= 10 and v17.dropped_cloudy <= cloudy
    assert v17.spearman_rho == pytest.approx(
        stats.spearmanr(keep["score"], keep["b"]).statistic, abs=1e-12
    )
    v16 = val[(val["year"] == 2016) & (val["subset"] == "all")]
    assert len(v16) and (v16["n"] == 0).all() and (v16["score_rows"] == 0).all()
    assert (
        v16["dropped_no_score"] + v16["dropped_cloudy"] + v16["dropped_unusable"] == 14 * 14
    ).all()
    assert (platform.root / "data" / "SYN" / "imports" / "scores" / "other_model.csv").is_file()


def test_analysts_guide_queries_run_on_the_warehouse(platform):
    """The five queries of docs/analysts.md's "Example queries" section run and return rows."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "analysts.md").read_text()
    section = guide.split("## Example queries", 1)[1].split("\n## ", 1)[0]
    queries = [
        q.strip()
        for block in re.findall(r"```sql\n(.*?)```", section, re.S)
        for q in block.split(";")
        if q.strip()
    ]
    assert len(queries) == 5
    # the guide names the demo's pair (2016-2019); this country's own years stand in for it
    pair = _q(platform.db, "SELECT min(first_year) a, max(last_year) b FROM development_regression")
    a, b = int(pair["a"].iloc[0]), int(pair["b"].iloc[0])
    for q in queries:
        q = q.replace("first_year = 2016", f"first_year = {a}").replace(
            "last_year = 2019", f"last_year = {b}"
        )
        assert len(_q(platform.db, q)) > 0, q


def test_deepcluster_clusters_and_gradcam_panel(platform, tmp_path):
    """`clusters: deepcluster` runs the alternating rounds in the asset (on a copy of the
    platform, so the other tests keep their clusters), and the Grad-CAM panel was written."""
    import shutil

    panel = platform.root / "data" / "SYN" / "gradcam" / "panel.png"
    assert panel.is_file() and panel.read_bytes()[:4] == b"\x89PNG"
    shutil.copytree(platform.root / "data", tmp_path / "data")
    copy_store(platform.db, tmp_path / "warehouse.duckdb")
    text = (platform.root / "countries.yaml").read_text()
    countries = tmp_path / "countries.yaml"
    countries.write_text(
        text.replace(
            "alpha_linearity: 1.0}", "alpha_linearity: 1.0, deepcluster_rounds: 1}"
        ).replace(
            "    name: tiny synthetic\n", "    name: tiny synthetic\n    clusters: deepcluster\n"
        )
    )
    defs = build_definitions(
        load_countries(countries),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "warehouse.duckdb"),
    )
    res = materialize(
        list(defs.assets),
        selection=select("clusters"),
        partition_key="SYN",
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert res.success, _failure_text(res)
    meta = res.asset_materializations_for_node("clusters")[0].metadata
    assert meta["method"].value == "deepcluster"
    assert (tmp_path / "data" / "SYN" / "models" / "deepcluster.pt").is_file()
    members = _q(
        tmp_path / "warehouse.duckdb", "SELECT * FROM cluster_members WHERE country = 'SYN'"
    )
    assert len(members) == len(
        _q(platform.db, "SELECT * FROM cluster_members WHERE country = 'SYN'")
    )


def test_a_failing_blocking_check_writes_nothing_and_stops_downstream(platform, monkeypatch):
    """Scores outside [0, 1]: `scores_in_unit_interval` fails before the write, the stored
    partition keeps its earlier rows, and `siscore_raster` (downstream) does not run."""
    import siscore_assets.core.models.fused_scoring as fused_scoring

    key = country_year_key("SYN", 2017)
    before = _q(platform.db, "SELECT * FROM siscore_grid WHERE year = 2017 ORDER BY ALL")
    raster_runs = len(
        platform.instance.fetch_materializations(AssetKey("siscore_raster"), limit=1000).records
    )
    monkeypatch.setattr(  # the function siscore_grid's blocks score with
        fused_scoring,
        "score_images_fused",
        lambda model, images, *a, **kw: np.full(len(images), 1.5),
    )
    result = _run(platform, ["siscore_grid", "siscore_raster"], key)
    assert not result.success
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(c.event_specific_data.check_name, c.event_specific_data.passed) for c in checks] == [
        ("scores_in_unit_interval", False)
    ]
    assert checks[0].event_specific_data.metadata["outside_unit_interval"].value > 0
    pd.testing.assert_frame_equal(
        _q(platform.db, "SELECT * FROM siscore_grid WHERE year = 2017 ORDER BY ALL"), before
    )
    after = len(
        platform.instance.fetch_materializations(AssetKey("siscore_raster"), limit=1000).records
    )
    assert after == raster_runs  # the downstream step never ran


def test_not_configured_replaces_the_partitions_rows_with_nothing(platform, tmp_path):
    """A country whose proxies layer becomes `none`: `proxies` for that year is emptied (the
    other year is untouched), and the asset still succeeds."""

    copy_store(platform.db, tmp_path / "warehouse.duckdb")
    text = (platform.root / "countries.yaml").read_text()
    countries = tmp_path / "countries.yaml"
    countries.write_text(
        text.replace("    name: tiny synthetic\n", "    name: tiny synthetic\n    proxies: none\n")
    )
    defs = build_definitions(
        load_countries(countries),
        data_root=str(platform.root / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "warehouse.duckdb"),
    )
    res = materialize(
        list(defs.assets),
        selection=select("proxies"),
        partition_key=country_year_key("SYN", 2017),
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert res.success
    assert (
        res.asset_materializations_for_node("proxies")[0].metadata["status"].value
        == "not configured"
    )
    rows = _q(
        tmp_path / "warehouse.duckdb",
        "SELECT year, count(*) AS n FROM proxies WHERE country = 'SYN' GROUP BY year",
    )
    assert rows.set_index("year")["n"].to_dict() == {2016: 14 * 14}
