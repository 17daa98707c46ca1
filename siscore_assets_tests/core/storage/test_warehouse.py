"""The warehouse door: partitions replaced, never duplicated; schemas that grow; bad frames refused
with nothing changed; the analysts' catalog of views; an old-style warehouse migrated."""

import duckdb
import pandas as pd
import pytest

from siscore_assets.core.storage import catalog, warehouse
from siscore_assets.core.storage.paths import UnsafePathError


def _frame(country: str, year: int, n: int, extra: bool = False) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "country": country,
            "year": year,
            "tile_id": [f"14/{i}/0" for i in range(n)],
            "score": [i / max(n, 1) for i in range(n)],
        }
    )
    if extra:
        df["note"] = "v2"
    return df


def _analyst(db, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_write_replaces_only_that_partition(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    warehouse.write(db, "t", _frame("A", 2017, 4), {"country": "A", "year": 2017})
    warehouse.write(db, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
    warehouse.write(db, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
    sql = "SELECT year, count(*) FROM t GROUP BY year ORDER BY year"
    assert _analyst(db, sql) == [(2016, 2), (2017, 4)]  # the analysts' catalog
    assert warehouse.query(db, sql).values.tolist() == [
        [2016, 2],
        [2017, 4],
    ]  # the pipeline's reads
    assert len(warehouse.read(db, "t", {"country": "A", "year": 2017})) == 4
    assert sorted(p.name for p in (tmp_path / "w" / "t").iterdir()) == [
        "country=A,year=2016.parquet",
        "country=A,year=2017.parquet",
    ]


def test_new_columns_are_added_and_old_rows_keep_null(tmp_path):
    """A session holding the catalog open keeps its columns and sees the new rows; the next
    session sees the new column too."""
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
    with duckdb.connect(str(db), read_only=True) as held:
        warehouse.write(db, "t", _frame("A", 2017, 2, extra=True), {"country": "A", "year": 2017})
        assert held.execute("SELECT year, count(*) FROM t GROUP BY 1 ORDER BY 1").fetchall() == [
            (2016, 2),
            (2017, 2),
        ]
    rows = _analyst(db, "SELECT year, note FROM t ORDER BY year, tile_id")
    assert rows == [(2016, None), (2016, None), (2017, "v2"), (2017, "v2")]


def test_rows_outside_the_partition_are_refused_and_nothing_changes(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    with pytest.raises(ValueError, match="outside partition"):
        warehouse.write(db, "t", _frame("A", 2017, 1), {"country": "A", "year": 2016})
    with warehouse.reader(db) as conn:
        assert warehouse.row_counts(conn) == {"t": 3}


def test_values_the_column_type_cannot_hold_are_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    warehouse.write(db, "t", _frame("A", 2017, 3), {"country": "A", "year": 2017})
    broken = _frame("A", 2016, 2)
    broken["score"] = ["not", "numbers"]
    with pytest.raises(
        ValueError, match="'score' holds VARCHAR values where the table holds DOUBLE"
    ):
        warehouse.write(db, "t", broken, {"country": "A", "year": 2016})
    assert len(warehouse.read(db, "t", {"country": "A", "year": 2016})) == 3


def test_read_of_a_missing_table_is_empty_and_clear_removes_nothing(tmp_path):
    db = tmp_path / "w.duckdb"
    assert warehouse.read(db, "nothing", {"country": "A"}).empty
    assert warehouse.clear(db, "nothing", {"country": "A"}) == 0


def test_clear_leaves_an_empty_partition_with_the_columns(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    warehouse.write(db, "t", _frame("A", 2017, 2), {"country": "A", "year": 2017})
    assert warehouse.clear(db, "t", {"country": "A", "year": 2017}) == 2
    assert _analyst(db, "SELECT year, count(*) FROM t GROUP BY 1") == [(2016, 3)]
    empty = warehouse.read(db, "t", {"country": "A", "year": 2017})
    assert empty.empty and list(empty.columns) == ["country", "year", "tile_id", "score"]


def test_an_all_missing_column_takes_its_type_from_a_later_partition(tmp_path):
    db = tmp_path / "w.duckdb"
    first = _frame("A", 2016, 2)
    first["prev_year"] = None
    warehouse.write(db, "t", first, {"country": "A", "year": 2016})
    second = _frame("A", 2017, 2)
    second["prev_year"] = 2016
    warehouse.write(db, "t", second, {"country": "A", "year": 2017})
    assert _analyst(db, "SELECT year, prev_year FROM t ORDER BY year, tile_id") == [
        (2016, None),
        (2016, None),
        (2017, 2016),
        (2017, 2016),
    ]


def test_a_coarser_write_replaces_every_finer_partition_it_covers(tmp_path):
    """Writing ``{country}`` replaces that country's ``{country, year}`` files; writing one
    ``{country, year}`` over a ``{country}`` file trims only that year's rows out of it."""
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    warehouse.write(db, "t", _frame("B", 2016, 1), {"country": "B", "year": 2016})
    both = pd.concat([_frame("A", 2016, 2), _frame("A", 2017, 5)])
    warehouse.write(db, "t", both, {"country": "A"})
    assert _analyst(db, "SELECT country, year, count(*) FROM t GROUP BY ALL ORDER BY ALL") == [
        ("A", 2016, 2),
        ("A", 2017, 5),
        ("B", 2016, 1),
    ]
    warehouse.write(db, "t", _frame("A", 2017, 1), {"country": "A", "year": 2017})
    assert _analyst(db, "SELECT country, year, count(*) FROM t GROUP BY ALL ORDER BY ALL") == [
        ("A", 2016, 2),
        ("A", 2017, 1),
        ("B", 2016, 1),
    ]


def test_union_view_covers_the_tables_that_exist(tmp_path):
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "a", _frame("A", 2016, 2), {"country": "A", "year": 2016})
    warehouse.union_view(db, "ab", ["a", "b"], ["country", "year", "tile_id"])
    assert _analyst(db, "SELECT count(*) FROM ab") == [(2,)]
    warehouse.write(
        db, "b", _frame("A", 2016, 3), {"country": "A", "year": 2016}
    )  # new member table
    assert _analyst(db, "SELECT count(*) FROM ab") == [(5,)]
    assert warehouse.query(db, "SELECT count(*) AS n FROM ab")["n"].tolist() == [5]


def test_unsafe_table_and_key_names_are_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    for table, keys in (
        ("../t", {"country": "A"}),
        ("t", {"country": "../A"}),
        ("t", {"country": "/etc"}),
        ("t", {"country": "A/B"}),
    ):
        frame = pd.DataFrame({"country": [keys["country"]], "v": [1]})
        with pytest.raises(UnsafePathError):
            warehouse.write(db, table, frame, keys)
    assert sorted(p.name for p in tmp_path.rglob("*.parquet")) == []


def test_an_old_style_warehouse_is_migrated_once(tmp_path):
    """A warehouse.duckdb with real tables (the layout before Parquet partitions) is copied out
    on first use: same rows, same view, later writes replace partitions as before."""
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT * FROM (VALUES ('A', 2016, 1.0), ('A', 2016, 2.0), "
            "('A', 2017, 3.0)) v(country, year, score)"
        )
        conn.execute("CREATE TABLE c AS SELECT 'A' AS country, 7 AS cluster_id")
        conn.execute("CREATE VIEW both_ AS SELECT country FROM t UNION ALL SELECT country FROM c")
    assert warehouse.query(db, "SELECT count(*) AS n FROM t")["n"].tolist() == [3]
    assert (tmp_path / "warehouse.duckdb.legacy").is_file()
    assert _analyst(db, "SELECT count(*) FROM both_") == [(4,)]
    assert _analyst(
        db, "SELECT table_type, count(*) FROM information_schema.tables GROUP BY 1"
    ) == [("VIEW", 3)]
    warehouse.write(
        db,
        "t",
        pd.DataFrame({"country": ["A"], "year": [2017], "score": [9.0]}),
        {"country": "A", "year": 2017},
    )
    assert _analyst(db, "SELECT year, sum(score) FROM t GROUP BY 1 ORDER BY 1") == [
        (2016, 3.0),
        (2017, 9.0),
    ]
    assert catalog.ensure_store(db) == tmp_path / "warehouse"


def test_transient_failures_are_retried_with_backoff_and_others_are_not():
    import errno

    from siscore_assets.core.storage.tables import retry

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EBUSY, "busy")
        return "ok"

    assert retry(flaky, first_wait_s=0.001) == "ok" and len(calls) == 3
    with pytest.raises(PermissionError):
        retry(
            lambda: (_ for _ in ()).throw(PermissionError(errno.EACCES, "no")), first_wait_s=0.001
        )
    lock = duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting lock is held')
    seen = []
    with pytest.raises(duckdb.IOException):
        retry(lambda: seen.append(1) or (_ for _ in ()).throw(lock), attempts=3, first_wait_s=0.001)
    assert len(seen) == 3


def test_an_empty_first_partition_does_not_fix_the_column_types(tmp_path):
    """DuckDB 1.4 types an empty pandas object column as INTEGER (2.0: NULL); the table's type
    comes from the first real values (siscore_change's first year is empty, the next has rows)."""
    db = tmp_path / "w.duckdb"
    empty = pd.DataFrame(
        {
            "country": pd.Series([], dtype=object),
            "year": pd.Series([], dtype="int64"),
            "note": pd.Series([], dtype=object),
        }
    )
    warehouse.write(db, "t", empty, {"country": "A", "year": 2016})
    warehouse.write(
        db,
        "t",
        pd.DataFrame({"country": ["A"], "year": [2017], "note": ["x"]}),
        {"country": "A", "year": 2017},
    )
    assert _analyst(db, "SELECT country, year, note FROM t") == [("A", 2017, "x")]


def test_a_table_created_while_the_catalog_is_rebuilt_waits_for_the_next_publish(
    tmp_path, monkeypatch
):
    """Another process's first write of a table can land between the catalog's table listing and
    its views (parallel yearly runs did: KeyError 'change_raster_files').  The rebuild shows the
    tables it read, and the new one appears with the next publish."""
    db = tmp_path / "w.duckdb"
    warehouse.write(db, "a", _frame("A", 2016, 2), {"country": "A", "year": 2016})
    real = catalog.table_schema
    raced = []

    def schema_then_race(conn, root, table):
        out = real(conn, root, table)
        if not raced:
            raced.append(table)
            folder = root / "b"
            folder.mkdir()
            _frame("A", 2016, 1).to_parquet(folder / "country=A,year=2016.parquet")
        return out

    monkeypatch.setattr(catalog, "table_schema", schema_then_race)
    assert catalog.publish(db, catalog.store_root(db)) == ["a"]
    monkeypatch.setattr(catalog, "table_schema", real)
    assert _analyst(db, "SELECT count(*) FROM a") == [(2,)]
    assert catalog.refresh(db) == ["a", "b"]
    assert _analyst(db, "SELECT count(*) FROM b") == [(1,)]


def test_a_spooled_partition_is_written_batch_by_batch_and_only_on_commit(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    warehouse.write(db, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
    keys = {"country": "A", "year": 2017}
    with warehouse.spool(db, "t", keys) as rows:
        first = _frame("A", 2017, 2).assign(note=None)  # a column all missing in the first batch
        rows.append(first)
        rows.append(_frame("A", 2017, 3).assign(tile_id=lambda f: f["tile_id"] + "b", note="x"))
        assert rows.query("SELECT count(*) AS n, count(note) AS m FROM {spool}").iloc[
            0
        ].tolist() == [5, 3]
        assert warehouse.read(db, "t", keys).empty  # nothing published before commit
        with pytest.raises(ValueError, match="outside partition"):
            rows.append(_frame("A", 2018, 1))
        assert rows.commit() == 5
    got = warehouse.read(db, "t", keys, order_by="tile_id")
    assert got["tile_id"].tolist() == ["14/0/0", "14/0/0b", "14/1/0", "14/1/0b", "14/2/0b"]
    assert got["note"].isna().sum() == 2
    assert (
        len(warehouse.read(db, "t", {"country": "A", "year": 2016})) == 3
    )  # other partitions untouched
    with warehouse.spool(
        db, "t", keys
    ) as rows:  # left without commit: the partition stays as it was
        rows.append(_frame("A", 2017, 1))
    assert len(warehouse.read(db, "t", keys)) == 5
    assert not any((db.parent / "warehouse" / warehouse.SPOOL_DIR).iterdir())  # spools removed


def test_a_spool_runs_on_one_thread_and_keeps_its_rows_in_batch_order(tmp_path):
    """Spools scan a whole country-year: one DuckDB thread (its order buffers grew with the rows
    on more), and the committed file holds the rows in the order they were appended."""
    db = tmp_path / "warehouse.duckdb"
    keys = {"country": "A", "year": 2016}
    with warehouse.spool(db, "t", keys) as rows:
        for b in range(12):
            rows.append(_frame("A", 2016, 500).assign(score=lambda f, b=b: b * 500 + f.index))
        threads = rows.query("SELECT current_setting('threads') AS n, count(*) FROM {spool}")
        assert threads["n"].tolist() == [1]
        assert rows.commit() == 6000
    (path,) = (db.parent / "warehouse" / "t").glob("*.parquet")
    with duckdb.connect() as conn:
        got = conn.execute(f"SELECT score FROM read_parquet('{path}')").fetchnumpy()["score"]
    assert got.tolist() == list(range(6000))


def test_a_later_partition_without_values_keeps_the_tables_types(tmp_path):
    """Typed rows first, then a year whose change columns are all missing (NaN floats) and an
    empty frame (object columns, which DuckDB types as INTEGER): stored in the table's types, so
    an analyst's `bool_or(significant)` and string filters keep working."""
    db = tmp_path / "w.duckdb"
    rows = pd.DataFrame({"country": ["A"], "year": [2017], "kind": ["x"], "significant": [True]})
    warehouse.write(db, "t", rows, {"country": "A", "year": 2017})
    nan_flags = rows.assign(year=2016, significant=float("nan"))
    warehouse.write(db, "t", nan_flags, {"country": "A", "year": 2016})
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in rows.columns})
    warehouse.write(db, "t", empty.astype({"year": "int64"}), {"country": "A", "year": 2018})
    types = dict(_analyst(db, "SELECT column_name, column_type FROM (DESCRIBE t)"))
    assert types == {
        "country": "VARCHAR",
        "year": "BIGINT",
        "kind": "VARCHAR",
        "significant": "BOOLEAN",
    }
    assert _analyst(db, "SELECT bool_or(significant), count(*) FROM t") == [(True, 2)]


def test_a_column_moving_to_another_family_of_types_is_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    rows = pd.DataFrame({"country": ["A"], "year": [2017], "significant": [True]})
    warehouse.write(db, "t", rows, {"country": "A", "year": 2017})
    with pytest.raises(
        ValueError, match="'year' holds VARCHAR values where the table holds BIGINT"
    ):
        warehouse.write(db, "t", rows.assign(year="2018"), {"country": "A", "year": "2018"})
    with pytest.raises(ValueError, match="'significant' holds DOUBLE values where"):
        warehouse.write(
            db, "t", rows.assign(year=2018, significant=1.0), {"country": "A", "year": 2018}
        )
    assert _analyst(db, "SELECT year FROM t") == [(2017,)]
    counts = rows.assign(n=3)
    warehouse.write(db, "u", counts, {"country": "A", "year": 2017})
    with pytest.raises(ValueError, match="'n' holds DOUBLE values that are not BIGINT.*1.5"):
        warehouse.write(db, "u", counts.assign(year=2018, n=1.5), {"country": "A", "year": 2018})
    warehouse.write(db, "u", counts.assign(year=2018, n=2.0), {"country": "A", "year": 2018})
    wider = rows.assign(year=2018, significant=False, score=0.5)
    warehouse.write(db, "t", wider.assign(year=2018), {"country": "A", "year": 2018})  # new column
