import duckdb
import pandas as pd
import pytest

from siscore_assets.core.storage import warehouse


def _frame(country: str, year: int, n: int, extra: bool = False) -> pd.DataFrame:
    df = pd.DataFrame({"country": country, "year": year, "tile_id": [f"14/{i}/0" for i in range(n)],
                       "score": [i / max(n, 1) for i in range(n)]})
    if extra:
        df["note"] = "v2"
    return df


def test_replace_partition_rewrites_only_that_partition(tmp_path):
    db = tmp_path / "w.duckdb"
    with warehouse.connect(db) as conn:
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
        warehouse.replace_partition(conn, "t", _frame("A", 2017, 4), {"country": "A", "year": 2017})
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
        counts = conn.execute("SELECT year, count(*) FROM t GROUP BY year ORDER BY year").fetchall()
    assert counts == [(2016, 2), (2017, 4)]


def test_new_columns_are_added_and_old_rows_keep_null(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 2), {"country": "A", "year": 2016})
        warehouse.replace_partition(conn, "t", _frame("A", 2017, 2, extra=True), {"country": "A", "year": 2017})
        rows = conn.execute("SELECT year, note FROM t ORDER BY year, tile_id").fetchall()
    assert rows == [(2016, None), (2016, None), (2017, "v2"), (2017, "v2")]


def test_rows_outside_the_partition_are_refused_and_nothing_changes(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
        with pytest.raises(ValueError, match="outside partition"):
            warehouse.replace_partition(conn, "t", _frame("A", 2017, 1), {"country": "A", "year": 2016})
        assert warehouse.row_counts(conn) == {"t": 3}


def test_a_failed_insert_rolls_back(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        warehouse.replace_partition(conn, "t", _frame("A", 2016, 3), {"country": "A", "year": 2016})
        broken = _frame("A", 2016, 2)
        broken["score"] = ["not", "numbers"]  # cannot be inserted into a DOUBLE column
        with pytest.raises(duckdb.Error):
            warehouse.replace_partition(conn, "t", broken, {"country": "A", "year": 2016})
        assert warehouse.row_counts(conn) == {"t": 3}


def test_read_partition_of_missing_table_is_empty(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        assert warehouse.read_partition(conn, "nothing", {"country": "A"}).empty


def test_an_all_missing_column_takes_its_type_from_a_later_partition(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        first = _frame("A", 2016, 2)
        first["prev_year"] = None
        warehouse.replace_partition(conn, "t", first, {"country": "A", "year": 2016})
        second = _frame("A", 2017, 2)
        second["prev_year"] = 2016
        warehouse.replace_partition(conn, "t", second, {"country": "A", "year": 2017})
        rows = conn.execute("SELECT year, prev_year FROM t ORDER BY year, tile_id").fetchall()
    assert rows == [(2016, None), (2016, None), (2017, 2016), (2017, 2016)]
