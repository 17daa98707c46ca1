"""Small helpers shared by the stage wiring: partition parsing, metadata pictures, owners."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue
from PIL import Image

from siscore_assets.core.countries import CountryConfig

from .partitions import COUNTRY, YEAR
from .resources import SiscoreSettings, Warehouse

OWNERS = ["team:siscore"]
NOT_CONFIGURED = "not configured"


def not_configured(country: CountryConfig, note: str) -> MaterializeResult:
    """A layer or input the country does not have ('none'): recorded, no rows, no failure."""
    return MaterializeResult(metadata={"status": NOT_CONFIGURED, "note": f"country {country.code}: {note}"})


def read_grid(warehouse: Warehouse, code: str, year: int) -> pd.DataFrame:
    """The country-year's `siscore_grid` rows; a clear error when it was not materialised."""
    frame = warehouse.read("siscore_grid", {"country": code, "year": year})
    if frame.empty:
        raise FileNotFoundError(f"no siscore_grid rows for {code}|{year}: materialise 'siscore_grid' first")
    return frame


def country_year(context: AssetExecutionContext, settings: SiscoreSettings) -> tuple[CountryConfig, int]:
    """The partition's country and year, checked against the countries file (clear error if not)."""
    keys = context.partition_key.keys_by_dimension
    country = settings.country(keys[COUNTRY])
    year = int(keys[YEAR])
    country.check_year(year)
    return country, year


def country_only(context: AssetExecutionContext, settings: SiscoreSettings) -> CountryConfig:
    return settings.country(context.partition_key)


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
