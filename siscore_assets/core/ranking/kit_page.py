"""What the annotation kit and the labelling kit share: one self-contained HTML page filled from
template files, with tiles inlined as JPEG data URIs (the pages open from file://, offline)."""

from __future__ import annotations

import base64
import io
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image, ImageOps


@cache
def read_template(package: str, name: str) -> str:
    """``package``'s ``templates/<name>``, read once (exact text: the page's bytes depend on it)."""
    path = resources.files(package).joinpath("templates", name)
    with path.open("r", encoding="utf-8", newline="") as f:
        return f.read()


def thumbnail(image: np.ndarray, px: int) -> np.ndarray:
    """``image`` cropped to a square and resampled to ``px`` x ``px`` (Lanczos)."""
    pil = ImageOps.fit(Image.fromarray(image), (px, px), method=Image.Resampling.LANCZOS)
    return np.asarray(pil)


def jpeg_data_uri(image: np.ndarray, quality: int) -> str:
    """A ``data:`` URI of ``image`` as a JPEG (what a page inlines instead of a file)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fill_page(template: str, values: dict[str, str], data: Any) -> str:
    """``template`` with every ``__NAME__`` replaced by ``values[NAME]`` and ``__DATA__`` by
    ``data`` as compact JSON, in one pass (no re-expansion of a value containing ``__NAME__``);
    '</' cannot appear inside <script>, so the JSON escapes it."""
    values = {**values, "DATA": json.dumps(data, separators=(",", ":")).replace("</", "<\\/")}
    return re.sub(r"__([A-Z]+)__", lambda m: values[m.group(1)], template)
