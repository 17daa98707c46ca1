"""The ensembled POG as the tables and files the scorer reads: one row per cluster (tier,
consensus, disagreement, pruned), the annotators' weights, and the POG as a line and as edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from siscore_assets.core.ranking.ensemble import EnsembleResult


@dataclass
class EnsembleTables:
    """``result``: the ensemble; ``valid``: its POG is a total preorder over every cluster not
    pruned (else nothing may be written); ``clusters``: the `ensemble_pog` rows; ``weights``: the
    `annotator_weights` rows; ``line`` / ``edges``: the POG files' text (the edges with the
    bottom cluster).  An invalid POG has empty tables and no edges."""

    result: EnsembleResult
    valid: bool
    clusters: pd.DataFrame
    weights: pd.DataFrame
    line: str
    edges: str


def ensemble_tables(
    result: EnsembleResult, ids: Sequence[int], bottom: int, country: str
) -> EnsembleTables:
    """The tables and file texts of ``result`` over the cluster ``ids`` (``bottom``: the
    uninhabited cluster, below everything in the edges file)."""
    valid = result.pog.nodes == frozenset(ids) - set(result.pruned) and result.pog.is_total()
    if not valid:  # nothing to write: the scorer would train on a broken order
        return EnsembleTables(
            result, False, pd.DataFrame(), pd.DataFrame(), result.pog.to_line(), ""
        )
    tier_of = {c: t for t, tier in enumerate(result.tiers, start=1) for c in tier}
    clusters = pd.DataFrame(
        {
            "country": country,
            "cluster_id": ids,
            "tier": pd.array([tier_of.get(c) for c in ids], dtype="Int64"),
            "consensus": result.consensus,
            "disagreement": result.disagreement,
            "pruned": [c in result.pruned for c in ids],
        }
    )
    weights = pd.DataFrame(
        {"country": country, "annotator": result.names, "weight": result.weights}
    )
    edges = result.pog.with_bottom(bottom).to_edges()
    return EnsembleTables(result, True, clusters, weights, result.pog.to_line(), edges)
