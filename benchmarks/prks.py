"""``make prks``: the North Korea sample from scratch (no cluster folder), end to end.

1. Stage 1 and everything upstream of it (ingest, the habitation filter, the platform's clusters)
   for ``PRKS`` (``benchmarks/prks/countries.yaml``);
2. the induced annotators' POGs (:mod:`benchmarks.induced_annotators`, a measurement stand-in
   for people) written where the annotation sensors look;
3. ``siscore run --country PRKS``: the whole graph with the ``cpu`` recipe (Stage 1 again,
   seeded: the clusters are checked to be the same ones the POGs were induced on).

    SISCORE_COUNTRIES=benchmarks/prks/countries.yaml python -m benchmarks.prks
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from dagster import AssetKey, AssetsDefinition, DagsterInstance, Definitions

from benchmarks import induced_annotators

COUNTRY = "PRKS"


def upstream_closure(assets: list, key: AssetKey) -> list:
    """The assets ``key`` needs (itself included), in the given order."""
    by_key = {k: a for a in assets if isinstance(a, AssetsDefinition) for k in a.keys}
    todo, seen = [key], set()
    while todo:
        k = todo.pop()
        if k in seen or k not in by_key:
            continue
        seen.add(k)
        a = by_key[k]
        todo += [d.asset_key for s in a.specs for d in s.deps]
        todo += list(a.keys)
    chosen = {id(by_key[k]) for k in seen}
    return [a for a in assets if id(a) in chosen]


def members_hash(data_root: Path) -> str:
    path = data_root / COUNTRY / "clusters" / "extra_members.npz"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def main() -> int:
    from siscore_assets.core.countries import load_countries
    from siscore_assets.definitions import build_definitions
    from siscore_assets.defs.orchestration.runner import RunFailed, materialize_country

    t0 = time.perf_counter()
    reg = load_countries()
    cfg = reg.get(COUNTRY)
    defs = build_definitions(reg)
    data_root = Path(defs.resources["settings"].data_root)
    stage1 = Definitions(
        assets=upstream_closure(list(defs.assets or []), AssetKey("clusters")),
        resources=defs.resources,
    )
    print(f"== {COUNTRY} stage 1 (data root {data_root})", flush=True)
    try:
        materialize_country(stage1, COUNTRY, cfg.years, instance=DagsterInstance.ephemeral())
    except RunFailed as exc:
        print("\n".join(f"error: {line}" for line in exc.lines), file=sys.stderr)
        return 1
    before = members_hash(data_root)
    for p in induced_annotators.write_induced(data_root, COUNTRY, induced_annotators.SAMPLE):
        print(
            f"induced POG (measurement stand-in, not a person): {p.name}: {p.read_text().strip()}"
        )
    t1 = time.perf_counter()
    print(f"== stage 1 + induced POGs: {t1 - t0:.0f} s; now the whole graph", flush=True)
    rc = subprocess.call(
        [str(Path(sys.executable).parent / "siscore"), "run", "--country", COUNTRY], env=os.environ
    )
    if rc == 0 and members_hash(data_root) != before:
        print("error: the clusters changed between the two runs: the induced POGs are stale")
        return 1
    print(f"== make prks: {time.perf_counter() - t0:.0f} s wall")
    return rc


if __name__ == "__main__":
    sys.exit(main())
