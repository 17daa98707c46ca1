"""Stage 2: what people (and proxies) say about the clusters, and one robust order from it.

The POG language and its operations are exported here (``ranking.Pog``, ``ranking.parse_line``,
``ranking.ensemble`` ...), each from the module named by its concept: :mod:`.graph` (the
:class:`Pog` value and its paths), :mod:`.parse` (the two text syntaxes, files and folders),
:mod:`.agreement` (rank matrix, Kendall tau-b), :mod:`.ensemble` (robust re-weighting) and
:mod:`.tiers` (cutting the consensus into tiers).  Data-guided POGs live in :mod:`.guided`, the
annotators' page in :mod:`.annotation_kit`.
"""

from siscore_assets.core.ranking.agreement import (
    agreement_matrix,
    kendall_tau_b_matrix,
    rank_matrix,
)
from siscore_assets.core.ranking.ensemble import (
    SCALE_FLOOR,
    EnsembleResult,
    ensemble,
    ensemble_ranks,
    normalise_ranks,
    reweight_fast,
    reweight_reference,
)
from siscore_assets.core.ranking.graph import Pog
from siscore_assets.core.ranking.parse import (
    PogError,
    annotator_files,
    parse_edges,
    parse_line,
    parse_pog_text,
    read_annotation_folder,
    read_annotator,
    read_pog_file,
    read_pog_lines,
)
from siscore_assets.core.ranking.tiers import (
    EXACT_TIERS_MAX,
    choose_tiers,
    cluster_order,
    path_ranks,
    tier_ranks,
)

__all__ = [
    "EXACT_TIERS_MAX",
    "SCALE_FLOOR",
    "EnsembleResult",
    "Pog",
    "PogError",
    "annotator_files",
    "choose_tiers",
    "cluster_order",
    "ensemble",
    "ensemble_ranks",
    "agreement_matrix",
    "kendall_tau_b_matrix",
    "normalise_ranks",
    "parse_edges",
    "parse_line",
    "parse_pog_text",
    "path_ranks",
    "rank_matrix",
    "read_annotation_folder",
    "read_annotator",
    "read_pog_file",
    "read_pog_lines",
    "reweight_fast",
    "reweight_reference",
    "tier_ranks",
]
