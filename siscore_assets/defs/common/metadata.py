"""What the Dagster UI shows a person: pictures, plots and tables as asset metadata."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
from dagster import MetadataValue
from PIL import Image


def png_bytes(image: np.ndarray, max_side: int = 640) -> bytes:
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def image_md(png: bytes, alt: str = "image") -> MetadataValue:
    """A picture in the Dagster UI: markdown with the PNG inline (no server needed)."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def line_plot_md(series: dict[str, list[float]], title: str, xlabel: str = "step") -> MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, values in series.items():
        ax.plot(values, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend()
    return image_md(figure_png(fig), title)


def frame_md(frame: pd.DataFrame, floatfmt: str = "{:.3f}", max_rows: int = 40) -> MetadataValue:
    """A readable markdown table (no tabulate dependency)."""
    df = frame.head(max_rows)
    cols = [str(c) for c in df.columns]

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    if len(frame) > max_rows:
        lines.append(f"\n… {len(frame) - max_rows} more rows")
    return MetadataValue.md("\n".join(lines))


def scatter_md(frame: pd.DataFrame, x: str, y: str, title: str) -> MetadataValue:
    """Scatter of a score against log(1 + proxy): how a validation figure looks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = frame[[x, y]].dropna()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter(ok[x], np.log1p(ok[y]), s=4, alpha=0.5)
    ax.set_xlabel(x.removeprefix("score_"))
    ax.set_ylabel(f"log(1 + {y.removeprefix('proxy_')})")
    ax.set_title(title)
    return image_md(figure_png(fig), title)
