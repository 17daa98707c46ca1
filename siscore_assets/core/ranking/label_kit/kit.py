"""The labelling kit: one self-contained HTML page in which a person labels tiles as urban, rural
or uninhabited, for the habitation filter and the pretraining's soft labels.

Like the POG annotation kit it opens from ``file://`` with no server, no network and nothing to
install: CSS, JS and the tiles (JPEG data URIs) are inlined.  The page is keyboard-first (1 / U
urban, 2 / R rural, 3 / N uninhabited, S / 0 skip, Z / Backspace undo, arrows to move, G grid),
keeps the work in the browser between visits and exports ``<name>.labels.csv``
(``tile_id,year,label``), which :mod:`.merge` reads.  The page's HTML, CSS and JS are files under
``templates/``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siscore_assets.core.ranking.kit_page import fill_page, jpeg_data_uri, read_template, thumbnail
from siscore_assets.core.ranking.label_kit.merge import CLASSES

#: The package holding templates/label_kit.{html,css,js} (shipped as package data).
_TEMPLATES = __name__.rpartition(".")[0]
_DATA_RE = re.compile(r'<script type="application/json" id="kit-data">(.*?)</script>', re.S)


@dataclass(frozen=True)
class KitTile:
    """One tile-year shown on the page."""

    tile_id: str
    year: int
    image: np.ndarray  # H x W x 3 uint8
    stratum: int = 0


@dataclass(frozen=True)
class LabelKit:
    """A rendered page and what it shows."""

    html: str
    tiles: list[tuple[str, int]]
    kit_id: str

    @property
    def size_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


def _template(name: str) -> str:
    return read_template(_TEMPLATES, name)


def _data_uri(image: np.ndarray, px: int, quality: int) -> str:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3 or arr.dtype != np.uint8:
        raise ValueError(f"tile image of shape {arr.shape} / {arr.dtype}: need H x W x 3 uint8")
    return jpeg_data_uri(thumbnail(arr[..., :3], px), quality)


def render_label_kit(
    tiles: Sequence[KitTile],
    *,
    title: str,
    country: str = "",
    note: str = "",
    px: int = 256,
    quality: int = 85,
) -> LabelKit:
    """The page for ``tiles`` (shown in this order).  Same input, same bytes."""
    if not tiles:
        raise ValueError("no tiles to label")
    keys = [(t.tile_id, int(t.year)) for t in tiles]
    if len(set(keys)) != len(keys):
        raise ValueError("a tile-year appears twice in the kit")
    kit_id = hashlib.sha256(json.dumps([country, keys]).encode()).hexdigest()[:16]
    data = {
        "title": title,
        "country": country,
        "kit_id": kit_id,
        "classes": list(CLASSES),
        "tiles": [
            {
                "tile_id": t.tile_id,
                "year": int(t.year),
                "stratum": int(t.stratum),
                "image": _data_uri(t.image, px, quality),
            }
            for t in tiles
        ],
    }
    values = {
        "TITLE": html.escape(title),
        "COUNTRY": html.escape(country),
        "N": str(len(tiles)),
        "NOTE": html.escape(note),
        "CSS": _template("label_kit.css"),
        "JS": _template("label_kit.js"),
    }
    page = fill_page(_template("label_kit.html"), values, data)
    return LabelKit(page, keys, kit_id)


def kit_tiles(path: Path) -> set[tuple[str, int]]:
    """The tile-years a kit page shows (read back from its embedded data): what may be labelled."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the labelling kit ({exc})") from exc
    m = _DATA_RE.search(text)
    if m is None:
        raise ValueError(f"{path}: not a labelling kit page (no kit data)")
    data = json.loads(m.group(1).replace("<\\/", "</"))
    return {(str(t["tile_id"]), int(t["year"])) for t in data.get("tiles", [])}
