"""An old-style warehouse (real tables inside ``warehouse.duckdb``) copied out to partition files:
split as the platform's writers partition each table, so a later write of a partition replaces
exactly its file; sibling writes at once never double rows; a killed migration rerun from scratch
leaves the same files."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from siscore_assets.core.storage import catalog, tables, warehouse
from siscore_assets_tests.core.storage.probes import lock_held

ANNOTATORS = ("a", "b", "c")
CLUSTERS = (1, 2, 3)


def _ranks(annotator: str, rank: float = 1.0) -> pd.DataFrame:
    """Rows of `annotator_ranks` (partitioned by country and annotator) for one annotator."""
    return pd.DataFrame(
        {
            "country": "SYN",
            "annotator": annotator,
            "cluster_id": list(CLUSTERS),
            "rank": [rank + c for c in CLUSTERS],
        }
    )


def _legacy(db: Path) -> None:
    """An old-style warehouse with real tables of this platform: `annotator_ranks` (country,
    annotator), `adhoc_change_files` (country, year, kind), `siscore_grid` (country, year) and
    `cluster_members` (country; it carries a `year` column)."""
    ranks = pd.concat([_ranks(a) for a in ANNOTATORS], ignore_index=True)  # noqa: F841
    files = pd.DataFrame(  # noqa: F841
        [
            {"country": "SYN", "year": 2020, "kind": k, "format": f, "path": f"/x/{k}.{f}"}
            for k in ("change_2016_2020", "change_2018_2020")
            for f in ("geotiff", "png")
        ]
    )
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE annotator_ranks AS SELECT * FROM ranks")
        conn.execute("CREATE TABLE adhoc_change_files AS SELECT * FROM files")
        conn.execute(
            "CREATE TABLE siscore_grid AS SELECT 'SYN' AS country, y AS year, "
            "'14/' || i || '/0' AS tile_id, i / 10 AS score "
            "FROM range(2) t(i), (VALUES (2016), (2020)) v(y)"
        )
        conn.execute(
            "CREATE TABLE cluster_members AS SELECT 'SYN' AS country, y AS year, "
            "'14/' || i || '/0' AS tile_id, i AS cluster_id "
            "FROM range(3) t(i), (VALUES (2016), (2020)) v(y)"
        )


def _files(root: Path) -> dict[str, dict[str, list[tuple]]]:
    """table -> partition file name -> its rows, sorted (what a migration leaves)."""
    out: dict[str, dict[str, list[tuple]]] = {}
    with duckdb.connect() as conn:
        for table in tables.list_tables(root):
            out[table] = {
                p.name: sorted(conn.execute(f"SELECT * FROM {tables.scan_sql([p])}").fetchall())
                for p in tables.partition_files(root / table)
            }
    return out


def _rank_rows(db: Path) -> list[tuple]:
    return warehouse.query(
        db,
        "SELECT annotator, count(*) AS n, sum(rank) AS s FROM annotator_ranks "
        "GROUP BY ALL ORDER BY ALL",
    ).values.tolist()


def test_a_migrated_table_is_split_as_its_writers_partition_it(tmp_path):
    """`annotator_ranks` is written per (country, annotator), `adhoc_change_files` per (country,
    year, kind): migrated files with fewer keys were shared by several later partitions, which
    each had to rewrite them.  Now each later write replaces exactly its own file."""
    db = tmp_path / "warehouse.duckdb"
    _legacy(db)
    root = catalog.ensure_store(db)
    names = {t: sorted(files) for t, files in _files(root).items()}
    assert names == {
        "adhoc_change_files": [
            "country=SYN,kind=change_2016_2020,year=2020.parquet",
            "country=SYN,kind=change_2018_2020,year=2020.parquet",
        ],
        "annotator_ranks": [f"annotator={a},country=SYN.parquet" for a in ANNOTATORS],
        "cluster_members": ["country=SYN,year=2016.parquet", "country=SYN,year=2020.parquet"],
        "siscore_grid": ["country=SYN,year=2016.parquet", "country=SYN,year=2020.parquet"],
    }
    folder = root / "annotator_ranks"
    before = {p.name: p.stat().st_ino for p in tables.partition_files(folder)}
    warehouse.write(db, "annotator_ranks", _ranks("b", 10.0), {"country": "SYN", "annotator": "b"})
    after = {p.name: p.stat().st_ino for p in tables.partition_files(folder)}
    assert after.keys() == before.keys()  # b's file replaced in place, no file added or trimmed
    assert {n for n in after if after[n] != before[n]} == {"annotator=b,country=SYN.parquet"}
    assert _rank_rows(db) == [["a", 3, 9.0], ["b", 3, 36.0], ["c", 3, 9.0]]
    # a table partitioned by fewer columns than it carries: its later write replaces them all
    members = pd.DataFrame({"country": "SYN", "year": [2016], "tile_id": ["t"], "cluster_id": 1})
    warehouse.write(db, "cluster_members", members, {"country": "SYN"})
    assert sorted(_files(root)["cluster_members"]) == ["country=SYN.parquet"]


def _write_siblings_at_once(monkeypatch, db: Path, root: Path) -> list[BaseException]:
    """Write annotators a and b of SYN in two threads at once.  Where both rewrite one shared
    file (a file with fewer keys holding rows of both) without the store's lock, both read it
    before either replaces it -- the worst interleaving, forced by a barrier; under the lock they
    take turns.  Returns the errors the writers raised."""
    real = warehouse.copy_atomic
    own = {tables.partition_name({"country": "SYN", "annotator": a}) for a in ("a", "b")}
    barrier = threading.Barrier(2, timeout=60)

    def rewrite(conn, select_sql, final, params=None, row_group_size=None):
        if final.name in own or not final.is_file() or lock_held(root):
            return real(conn, select_sql, final, params, row_group_size)
        rows = f"__rows_{threading.get_ident()}"
        conn.execute(f"CREATE TEMP TABLE {rows} AS {select_sql}", params or [])  # read it ...
        barrier.wait()  # ... the other writer has read it too
        try:
            return real(conn, f"SELECT * FROM {rows}", final, None, row_group_size)
        finally:
            conn.execute(f"DROP TABLE {rows}")

    monkeypatch.setattr(warehouse, "copy_atomic", rewrite)
    errors: list[BaseException] = []

    def go(annotator: str) -> None:
        try:
            keys = {"country": "SYN", "annotator": annotator}
            warehouse.write(db, "annotator_ranks", _ranks(annotator, 10.0), keys)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(a,)) for a in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_sibling_partitions_written_at_once_after_a_migration_never_double_rows(
    tmp_path, monkeypatch
):
    db = tmp_path / "warehouse.duckdb"
    _legacy(db)
    root = catalog.ensure_store(db)
    assert _write_siblings_at_once(monkeypatch, db, root) == []
    assert _rank_rows(db) == [["a", 3, 36.0], ["b", 3, 36.0], ["c", 3, 9.0]]


def test_sibling_writes_that_trim_one_shared_file_at_once_lose_no_update(tmp_path, monkeypatch):
    """A file with fewer keys than the writes (a store migrated before the split above, or a
    partition cleared country-wide) holds rows of several partitions: each write removes its
    rows from it by rewriting it, one writer at a time, so neither undoes the other's."""
    db = tmp_path / "warehouse.duckdb"
    everyone = pd.concat([_ranks(a) for a in ANNOTATORS], ignore_index=True)
    warehouse.write(db, "annotator_ranks", everyone, {"country": "SYN"})
    root = catalog.ensure_store(db)
    assert _write_siblings_at_once(monkeypatch, db, root) == []
    assert _rank_rows(db) == [["a", 3, 36.0], ["b", 3, 36.0], ["c", 3, 9.0]]
    assert sorted(_files(root)["annotator_ranks"]) == [
        "annotator=a,country=SYN.parquet",
        "annotator=b,country=SYN.parquet",
        "country=SYN.parquet",  # c's rows, trimmed of a's and b's
    ]


class Killed(BaseException):
    """Stands for SIGKILL in the middle of a migration."""


def test_a_killed_migration_rerun_from_scratch_leaves_the_same_files(tmp_path, monkeypatch):
    """The old file is moved aside only at the end, so a migration killed part-way runs again
    from scratch on next use.  Whatever the killed attempt left in a table's folder -- some of
    its files, or files split another way (by an earlier version) -- the rerun leaves exactly the
    files a clean migration does: no row twice."""
    clean = tmp_path / "clean" / "warehouse.duckdb"
    clean.parent.mkdir()
    _legacy(clean)
    db = tmp_path / "killed" / "warehouse.duckdb"
    db.parent.mkdir()
    shutil.copy(clean, db)
    expected = _files(catalog.ensure_store(clean))

    real, calls = catalog.copy_atomic, []

    def killed_after_three(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog, "copy_atomic", killed_after_three)
    with pytest.raises(Killed):
        catalog.ensure_store(db)
    monkeypatch.setattr(catalog, "copy_atomic", real)
    root = catalog.store_root(db)
    assert db.is_file() and not (root / catalog.STORE_MARK).exists()
    stray = root / "annotator_ranks"  # as another split of the same table would have left
    _ranks("a").to_parquet(stray / "annotator=a,country=SYN.parquet")
    pd.concat([_ranks(a) for a in ANNOTATORS], ignore_index=True).to_parquet(
        stray / "country=SYN.parquet"
    )
    (stray / ".country=SYN.parquet.123.abcd.tmp").write_bytes(b"half a file")

    assert catalog.ensure_store(db) == root
    assert _files(root) == expected
    assert not [p for p in stray.iterdir() if p.name.endswith(tables.TMP_SUFFIX)]
    assert _rank_rows(db) == [["a", 3, 9.0], ["b", 3, 9.0], ["c", 3, 9.0]]
    assert (db.parent / "warehouse.duckdb.legacy").is_file()
