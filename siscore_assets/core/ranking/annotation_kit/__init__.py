"""The annotators' page: a self-contained HTML kit in which a person ranks clusters into a POG.

The logic lives in :mod:`.kit`; the page's HTML, CSS and JS are files under ``templates/``.
Everything other code needs is re-exported here, so callers import from
``siscore_assets.core.ranking.annotation_kit``.
"""

from siscore_assets.core.ranking.annotation_kit.kit import (
    ANNOTATION_FILE_GLOBS,
    ANNOTATOR_NAME_RE,
    AnnotationKit,
    ImageLike,
    annotation_files,
    files_fingerprint,
    folder_clusters,
    folder_fingerprint,
    is_valid_annotator_name,
    render_annotation_kit,
)

__all__ = [
    "ANNOTATION_FILE_GLOBS",
    "ANNOTATOR_NAME_RE",
    "AnnotationKit",
    "ImageLike",
    "annotation_files",
    "folder_clusters",
    "files_fingerprint",
    "folder_fingerprint",
    "is_valid_annotator_name",
    "render_annotation_kit",
]
