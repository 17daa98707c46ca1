"""A finished `make nk` run's tile stores re-read through the store's shared statistics
(``core/models/stored_stats.py``): the scorer parts against the ones that run stored, the scores
from them against its `siscore_grid`, and both baselines against its tables.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.shared_stats_check --root /tmp/nk_old \\
        [--work /tmp/shared_stats_check]

The tile stores are copied to ``--work`` without their parts, statistics and band means, so the
run's own files are never touched.  One torch thread, as the pipeline's block tasks run.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import duckdb
import numpy as np
import torch

from siscore_assets.core.compute.blocks import WorkerConfig
from siscore_assets.core.models import batch_inference
from siscore_assets.core.models import scorer_parts as sp
from siscore_assets.core.storage.tile_store import TileStore

BY_ROW = (
    "SELECT t.{col} FROM {table} t JOIN patches p USING (country, year, tile_id) "
    "WHERE t.country = 'PRK' AND t.year = ? ORDER BY p.image_row"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="the run's data root (PRK inside)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/shared_stats_check"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = args.root / "PRK" / "models"
    scorer = str(models / "scorer.pt")
    rankers = {"feature_baseline": models / "feature_ranker.json"}
    rankers["ordinal_baseline"] = models / "ordinal_ranker.json"
    con = duckdb.connect(str(args.root / "warehouse.duckdb"), read_only=True)
    shutil.rmtree(args.work, ignore_errors=True)
    here = WorkerConfig(workers=1)
    worst = {"stats": 0.0, "siscore": 0.0, **{t: 0.0 for t in rankers}}
    config = batch_inference.cached_scorer(scorer, None).config
    for year_dir in sorted((args.root / "PRK" / "tiles").iterdir()):
        year = int(year_dir.name)
        landed = next(p for p in year_dir.iterdir() if (p / "manifest.json").is_file())
        store = args.work / year_dir.name / landed.name
        ignore = shutil.ignore_patterns("parts", "stats", "band_means")
        shutil.copytree(landed, store, ignore=ignore)
        spec = sp.ensure_parts(str(store), config, None, here)
        if sp.shared_stats(spec) is None:
            raise SystemExit(f"{scorer}: this recipe's parts do not read the shared statistics")
        n = len(TileStore(str(store)))
        cnn, stats = sp.read_parts(str(store), spec, 0, n)
        cnn_landed, stats_landed = sp.read_parts(str(landed), spec, 0, n)
        if not np.array_equal(cnn, cnn_landed):
            raise SystemExit(f"{year}: CNN bytes differ")
        worst["stats"] = max(worst["stats"], float(np.abs(stats - stats_landed).max()))
        scores = np.concatenate(  # task by task, as `siscore_grid` scores them
            [
                sp.score_parts_block(scorer, str(store), lo, hi, None, None, True)
                for _, lo, hi in batch_inference.block_tasks(TileStore(str(store)))
            ]
        )
        grid = con.execute(BY_ROW.format(col="raw_score", table="siscore_grid"), [year])
        worst["siscore"] = max(
            worst["siscore"], float(np.abs(scores - grid.fetchnumpy()["raw_score"]).max())
        )
        for table, path in rankers.items():
            batch_inference.ensure_feature_stats(str(path), str(store), here)
            got = batch_inference.feature_block(str(path), str(store), 0, n)
            ref = con.execute(BY_ROW.format(col="score", table=table), [year]).fetchnumpy()
            worst[table] = max(worst[table], float(np.abs(got - ref["score"]).max()))
        print(f"{year}: {n} tiles")
    print(f"parts' statistics: max difference from the run's {worst['stats']:.3g}; CNN bytes equal")
    print(f"raw siScore from these parts against the run's siscore_grid: {worst['siscore']:.3g}")
    print(", ".join(f"{t} {worst[t]:.3g}" for t in rankers))


if __name__ == "__main__":
    main()
