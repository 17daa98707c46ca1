"""An analyst session on the catalog for the whole of a run (tiny scale): a process holding
``warehouse.duckdb`` read-only and querying it in a loop never makes a materialisation fail,
and only ever sees complete partitions."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import time

import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("storage_processes")]

ANALYST = textwrap.dedent("""
    import sys, time, duckdb
    conn = duckdb.connect(sys.argv[1], read_only=True)
    seen = set()
    while not __import__("os").path.exists(sys.argv[2]):
        rows = conn.execute(
            "SELECT year, count(*), count(DISTINCT tile_id) FROM patches GROUP BY year"
        ).fetchall()
        seen.update(rows)
        time.sleep(0.01)
    print(sorted(seen))
""")


def test_an_analyst_holding_the_catalog_never_blocks_a_run(tiny_countries, tmp_path):
    defs, db = definitions_for(tiny_countries, tmp_path)

    def run(year: int):
        return materialize(
            list(defs.assets),
            selection=select("granules", "patches"),
            partition_key=country_year_key("SYN", year),
            resources=dict(defs.resources),
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    assert run(2016).success
    stop = tmp_path / "stop"
    analyst = subprocess.Popen(
        [sys.executable, "-c", ANALYST, str(db), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        time.sleep(1.0)  # the session is open before the writes start
        assert analyst.poll() is None, analyst.stderr.read()
        results = [run(2017), run(2016), run(2017)]
    finally:
        stop.touch()
        out, err = analyst.communicate(timeout=60)
    assert all(r.success for r in results)
    assert analyst.returncode == 0, err
    seen = ast.literal_eval(out)  # [(year, rows, distinct tiles), ...] over every query of the loop
    assert {year for year, _, _ in seen} <= {2016, 2017} and seen
    assert all(rows == tiles == 14 * 14 for _, rows, tiles in seen), (
        seen
    )  # complete partitions only
