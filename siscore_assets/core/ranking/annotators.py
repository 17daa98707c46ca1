"""Annotators and their folder: simulated annotators' files, the tables of parsed POGs, and the
seeded choice of sample tiles an annotator is shown per cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from siscore_assets.core.ranking.graph import Pog
from siscore_assets.core.storage.files import atomic_path
from siscore_assets.core.storage.paths import UnsafePathError, safe_name

#: What a simulation wrote into an annotation folder (so a re-run removes only its own files).
SIMULATED_MANIFEST = ".simulated.json"
#: Annotator name of a data-guided POG that joins the human annotators.
GUIDED_PREFIX = "guided_"


def simulated_files(folder: Path) -> list[str]:
    """POG file names an earlier simulation wrote into ``folder`` (none if it wrote nothing)."""
    try:
        return [
            safe_name(f"{name}.pog", "annotator name")
            for name in json.loads((folder / SIMULATED_MANIFEST).read_text())
        ]
    except UnsafePathError:
        raise
    except (OSError, ValueError):
        return []


def write_simulated(folder: Path, simulated: dict[str, str]) -> None:
    """Write simulated annotators as ``<name>.pog``, replacing only earlier simulated files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in simulated_files(folder):
        (folder / name).unlink(missing_ok=True)
    for name, line in simulated.items():
        with atomic_path(folder / safe_name(f"{name}.pog", "annotator name")) as tmp:
            tmp.write_text(line + "\n", encoding="utf-8")
    with atomic_path(folder / SIMULATED_MANIFEST) as tmp:
        tmp.write_text(json.dumps(sorted(simulated)))


def annotator_tables(
    found: dict[str, Pog], ids: list[int], country: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`annotator_pogs` (one row per annotator, the POG as an edge list and, when total, a line)
    and `annotator_ranks` (one row per annotator x cluster, tied clusters at their averaged
    rank)."""
    rows, ranks = [], []
    for name, pg in found.items():
        vec = pg.rank_vector(ids)
        rows.append(
            {
                "country": country,
                "annotator": name,
                "n_ranked": int(np.isfinite(vec).sum()),
                "n_tiers": len(pg.equal),
                "pog_edges": pg.to_edges(),
                "pog_line": pg.to_line() if pg.is_total() else None,
            }
        )
        ranks += [
            {"country": country, "annotator": name, "cluster_id": c, "rank": float(r)}
            for c, r in zip(ids, vec)
        ]
    return pd.DataFrame(rows), pd.DataFrame(ranks)


def sample_members(
    members: pd.DataFrame, ids: list[int], samples: int, seed: int
) -> dict[int, pd.DataFrame]:
    """Up to ``samples`` seeded tile-years of every cluster in ``ids`` (rows of `cluster_members`,
    ordered by year and tile id): what the annotation kit shows."""
    rng = np.random.default_rng(seed)
    picks: dict[int, pd.DataFrame] = {}
    for cid in ids:
        rows = members[members["cluster_id"] == cid]
        chosen = np.sort(rng.choice(len(rows), size=min(samples, len(rows)), replace=False))
        picks[cid] = rows.iloc[chosen]
    return picks


def true_cluster_means(members: pd.DataFrame, truth: pd.DataFrame, bottom: int) -> dict[int, float]:
    """Each inhabited cluster's mean true development (synthetic countries only): what the
    simulated annotators rank, with noise."""
    joined = members.merge(truth[["year", "tile_id", "true_development"]], on=["year", "tile_id"])
    means = joined[joined["cluster_id"] != bottom].groupby("cluster_id")["true_development"].mean()
    return {int(k): float(v) for k, v in means.items()}
