"""8 country x year partitions of cheap yearly assets (granules, proxies; ``--assets`` to
choose), one run at a time and then 8 runs side by side, each a real Dagster run (multiprocess
executor) in a temporary instance and warehouse; checks every partition's row counts and reports
the wall times, the speedup and any lock error.

    PYTHONPATH=. python -m benchmarks.parallel_backfill [--parallel 8] [--tiles 14] \\
        [--assets granules,proxies]

(`patches` is left out by default: on the current warehouse, a partition whose `problem` column
is all NULL that happens to create the table types it INTEGER, and a later partition's text
then fails; a storage matter, not one of parallelism.)
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import yaml
from dagster import AssetKey, DagsterInstance

from siscore_assets.defs.orchestration.runner import (
    JobTarget,
    Wave,
    failure_message,
    run_partitions,
    worker_pool,
)

CHAIN = ("granules", "proxies")
COUNTRY = """
  {code}:
    years: [2016, 2017, 2018, 2019]
    source: {{kind: synthetic, seed: {seed}, x0: 13903, y0: 6163, nx: {n}, ny: {n}, tile_px: 32,
             granule_tiles: {n}, n_annotators: 3, pretrain_images: 60}}
"""


def _instance(home: Path) -> DagsterInstance:
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(home / "storage")
    for section in ("local_artifact_storage", "compute_logs"):
        config[section]["config"]["base_dir"] = str(home / section)
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def _one_pass(
    tmp: Path, label: str, countries: Path, keys: list[str], parallel: int, chain: tuple
) -> dict:
    target = JobTarget(
        "siscore_assets.definitions",
        "wave_job",
        {
            "countries_file": str(countries),
            "data_root": str(tmp / label / "data"),
            "warehouse_path": str(tmp / label / "warehouse.duckdb"),
        },
    )
    wave = Wave("yearly", tuple(AssetKey(n) for n in chain))
    with _instance(tmp / label / "dagster") as instance:
        pool = worker_pool(target, parallel)
        try:
            if pool is not None:  # start the workers (their imports) before the clock
                list(pool.map(abs, range(parallel)))
            t0 = time.perf_counter()
            runs = list(run_partitions(instance, target, wave, keys, pool=pool))
            wall = time.perf_counter() - t0
        finally:
            if pool is not None:
                pool.shutdown()
        errors = [e for r in runs if not r.success for e in [failure_message(instance, r.run_id)]]
    with duckdb.connect(str(tmp / label / "warehouse.duckdb"), read_only=True) as conn:
        tables = [t for t in chain if t in ("patches", "proxies")]  # one row per tile
        counts = {
            t: dict(
                conn.execute(
                    f"SELECT country || '|' || year, count(*) FROM {t} GROUP BY ALL"
                ).fetchall()
            )
            for t in tables
        }
    return {"wall": wall, "runs": runs, "errors": errors, "counts": counts}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--tiles", type=int, default=14, help="tiles per side of each country")
    ap.add_argument("--assets", default=",".join(CHAIN), help="comma-separated yearly assets")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        countries = tmp / "countries.yaml"
        body = "".join(
            COUNTRY.format(code=c, seed=s, n=args.tiles) for c, s in (("SYA", 7), ("SYB", 11))
        )
        countries.write_text(textwrap.dedent("default: SYA\ncountries:" + body))
        keys = [f"{c}|{y}" for c in ("SYA", "SYB") for y in (2016, 2017, 2018, 2019)]
        chain = tuple(args.assets.split(","))
        serial = _one_pass(tmp, "serial", countries, keys, 1, chain)
        parallel = _one_pass(tmp, "parallel", countries, keys, args.parallel, chain)
        expected = args.tiles * args.tiles
        for label, res in (("one at a time", serial), (f"{args.parallel} at once", parallel)):
            ok = sum(r.success for r in res["runs"])
            rows_ok = all(res["counts"][t].get(k) == expected for t in res["counts"] for k in keys)
            locks = [e for e in res["errors"] if "lock" in e.lower()]
            print(
                f"{label}: {res['wall']:.1f} s wall, {ok}/{len(keys)} runs succeeded, "
                f"row counts {'correct' if rows_ok else 'WRONG'} "
                f"({expected} tiles per partition in "
                f"{', '.join(res['counts'])}), lock errors: {len(locks)}"
            )
            for e in res["errors"]:
                print(f"  error: {e[:300]}")
        print(
            f"speedup: {serial['wall'] / parallel['wall']:.2f}x over {len(keys)} partitions "
            f"({', '.join(chain)})"
        )


if __name__ == "__main__":
    main()
