"""The annotation kit: one self-contained HTML page in which a person ranks clusters into a POG.

Annotators are economists and people who know the country, not engineers: the page must open from
``file://`` with no server, no network and nothing to install.  So everything is inlined (CSS, JS,
the contact sheets as JPEG data URIs) and the page writes ``<name>.pog`` in the line syntax that
``core.ranking.parse_line`` reads (``3=4=6>1=2=7>0``, most developed first, ``=`` ties, clusters
left in the "incomparable" pool unmentioned).  The cluster list is a parameter, so clusters from the
warehouse and clusters from a folder of images (``clusters/<id>/*.png``) share one renderer.

The page's HTML, CSS and JS are real files under ``templates/`` (read with
``importlib.resources``), inlined into the page at render time by one ``__NAME__`` substitution
pass.  Also here: the fingerprint of an annotation folder, which the Dagster sensor compares
between ticks.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from siscore_assets.core.imagery.preview import contact_sheet
from siscore_assets.core.imagery.tile_folder import cluster_image_paths
from siscore_assets.core.ranking.kit_page import fill_page, jpeg_data_uri, read_template, thumbnail

ImageLike = np.ndarray | str | os.PathLike
# The name the page accepts for `<name>.pog` (kept in sync with NAME_RE in the page's script).
ANNOTATOR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ANNOTATION_FILE_GLOBS = ("*.pog", "pogs.txt", "annotators.txt")

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

# The package that holds templates/kit.html, kit.css and kit.js (shipped as package data).
_TEMPLATES = __name__.rpartition(".")[0]


@dataclass(frozen=True)
class AnnotationKit:
    """A rendered kit: the page, what it shows, and the images that could not be read."""

    html: str
    clusters: list[int]
    images_per_cluster: dict[int, int]
    skipped: list[str] = field(default_factory=list)
    preview: np.ndarray = field(default_factory=lambda: np.zeros((8, 8, 3), np.uint8))

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def folder_clusters(folder: str | os.PathLike) -> dict[int, list[Path]]:
    """Clusters from a folder laid out as ``<folder>/<cluster id>/<image>.png`` (the NK sample)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"cluster image folder not found: {root}")
    for sub in root.iterdir():  # stricter than the trainer: a stray folder is a mistake here
        if sub.is_dir() and not sub.name.startswith(".") and not sub.name.isdigit():
            raise ValueError(f"{sub}: a cluster folder must be named by its integer cluster id")
    out = cluster_image_paths(root)
    if len(out) < 2:
        raise ValueError(f"{root}: found {len(out)} cluster folder(s); need at least 2 to rank")
    return out


def _load_rgb(item: ImageLike) -> np.ndarray:
    if isinstance(item, np.ndarray):
        arr = np.asarray(item)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"image array of shape {arr.shape}: need H x W x 3 (RGB)")
        if arr.dtype != np.uint8:
            raise ValueError(f"image array of dtype {arr.dtype}: need uint8")
        return arr[..., :3]
    with Image.open(item) as im:
        return np.asarray(im.convert("RGB"))


def _template(name: str) -> str:
    return read_template(_TEMPLATES, name)


def _pick(items: Sequence[ImageLike], k: int, rng: np.random.Generator) -> list[ImageLike]:
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]


def render_annotation_kit(
    clusters: Mapping[int, Sequence[ImageLike]],
    *,
    title: str,
    country: str = "",
    captions: Mapping[int, str] | None = None,
    instructions_note: str = "",
    samples: int = 8,
    cols: int = 4,
    thumb_px: int = 128,
    quality: int = 80,
    seed: int = 0,
) -> AnnotationKit:
    """Render the kit for ``{cluster_id: [uint8 RGB arrays or image paths]}``.

    Each cluster shows up to ``samples`` tiles (chosen with ``seed`` when more are given) as one
    JPEG contact sheet of ``thumb_px`` thumbnails.  Unreadable images are skipped and listed in
    ``skipped``; a cluster left with none is still rankable and says so.  Same input, same bytes.
    """
    ids = sorted(int(c) for c in clusters)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 clusters to rank, got {len(ids)}")
    if any(c < 0 for c in ids):
        raise ValueError(f"cluster ids must be non-negative integers, got {ids}")
    if samples < 1 or cols < 1 or thumb_px < 8:
        raise ValueError("samples and cols must be >= 1 and thumb_px >= 8")
    rng = np.random.default_rng(seed)
    captions = captions or {}
    cards, skipped, counts, preview_rows = [], [], {}, []
    by_id = {int(k): v for k, v in clusters.items()}
    for cid in ids:
        thumbs = []
        for item in _pick(list(by_id[cid]), samples, rng):
            try:
                thumbs.append(thumbnail(_load_rgb(item), thumb_px))
            except (OSError, ValueError, UnidentifiedImageError) as exc:
                where = item if not isinstance(item, np.ndarray) else f"cluster {cid} array"
                skipped.append(f"{where}: {exc}")
        counts[cid] = len(thumbs)
        sheet = contact_sheet(np.stack(thumbs), cols=min(cols, len(thumbs))) if thumbs else None
        row = np.zeros((cols, thumb_px, thumb_px, 3), np.uint8)
        for k, thumb in enumerate(thumbs[:cols]):
            row[k] = thumb
        preview_rows.append(row)
        cards.append(
            {
                "id": cid,
                "caption": str(captions.get(cid, "")),
                "images": len(thumbs),
                "image": jpeg_data_uri(sheet, quality) if sheet is not None else "",
            }
        )
    kit_id = hashlib.sha256(json.dumps([country, ids]).encode()).hexdigest()[:16]
    data = {"title": title, "country": country, "kit_id": kit_id, "clusters": cards}
    values = {
        "TITLE": html.escape(title),
        "COUNTRY": html.escape(country),
        "N": str(len(ids)),
        "NOTE": html.escape(instructions_note),
        "CSS": _template("kit.css"),
        "JS": _template("kit.js"),
    }
    page = fill_page(_template("kit.html"), values, data)
    preview = contact_sheet(np.concatenate(preview_rows), cols=cols)
    return AnnotationKit(page, ids, counts, skipped, preview)


def is_valid_annotator_name(name: str) -> bool:
    """What the page accepts as ``<name>`` in ``<name>.pog``: safe in any file system."""
    return bool(ANNOTATOR_NAME_RE.match(name))


def annotation_files(folder: str | os.PathLike, ignore: Iterable[str] = ()) -> list[Path]:
    """The files that make up a folder's POGs (``*.pog``, ``pogs.txt``, ``annotators.txt``)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    skip = set(ignore)
    found = {p for pattern in ANNOTATION_FILE_GLOBS for p in root.glob(pattern)}
    return sorted(
        p for p in found if p.is_file() and p.name not in skip and not p.name.startswith(".")
    )


def folder_fingerprint(folder: str | os.PathLike, ignore: Iterable[str] = ()) -> str | None:
    """A content hash of a folder's annotation files (names and bytes); None when there are none.

    Contents, not modification times: copying the same file again is no change, and an edit that
    keeps the size is one.
    """
    files = annotation_files(folder, ignore)
    return files_fingerprint(files) if files else None


def files_fingerprint(files: Iterable[Path]) -> str:
    """A content hash of these files, in this order (names and bytes; a file that vanished
    between listing and reading is left out: the next tick sees the new state)."""
    digest = hashlib.sha256()
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:
            continue
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()
