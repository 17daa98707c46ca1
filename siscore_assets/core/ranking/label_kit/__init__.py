"""The labelling kit: a self-contained HTML page in which people label tiles urban / rural /
uninhabited, the seeded sample it shows, and the merge of several people's exports into soft
labels (vote fractions) with their agreement.

Sampling lives in :mod:`.sample`, the page in :mod:`.kit` (templates under ``templates/``), the
merge in :mod:`.merge`; everything other code needs is re-exported here.
"""

from siscore_assets.core.ranking.label_kit.kit import (
    KitTile,
    LabelKit,
    kit_tiles,
    render_label_kit,
)
from siscore_assets.core.ranking.label_kit.merge import (
    CLASSES,
    COPY_LABELS,
    EXPORT_SUFFIX,
    MERGED_COLUMNS,
    Agreement,
    LabelFileError,
    agreement,
    annotator_of,
    cohen_kappa,
    export_files,
    fleiss_kappa,
    merge_exports,
    read_export,
    read_exports,
    soft_labels,
)
from siscore_assets.core.ranking.label_kit.sample import (
    SampledTile,
    appearance_features,
    sample_tiles,
)

__all__ = [
    "CLASSES",
    "COPY_LABELS",
    "EXPORT_SUFFIX",
    "MERGED_COLUMNS",
    "Agreement",
    "KitTile",
    "LabelFileError",
    "LabelKit",
    "SampledTile",
    "agreement",
    "annotator_of",
    "appearance_features",
    "cohen_kappa",
    "export_files",
    "fleiss_kappa",
    "kit_tiles",
    "merge_exports",
    "read_export",
    "read_exports",
    "render_label_kit",
    "sample_tiles",
    "soft_labels",
]
