"""Countries-file blocks for ground data a user holds: district indicators to learn (seed 004)
and, with them, what the district model needs to know.  Re-exported by ``countries``; rooms
import the countries file, not this module."""

from __future__ import annotations

from typing import Any, Literal

import pydantic as pd
from pydantic import BaseModel, Field

from siscore_assets.core.countries_stac import STRICT


class IndicatorSettings(BaseModel):
    """``indicators:``: district columns to learn with the multi-level model (``targets``, columns
    of the district layer), the year their values describe (None: the country's first year), and
    the evaluation: ``splits`` seeded splits holding out ``test_fraction`` of the labelled
    districts; ``augment`` adds district unions weighing ``union_weight`` times the districts.
    ``indicators: [population]`` is short for ``{targets: [population]}``."""

    model_config = STRICT

    targets: tuple[str, ...] = Field(min_length=1, strict=False)
    year: int | None = None
    splits: int = Field(100, ge=1, le=10000)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    augment: bool = True
    union_weight: float = Field(0.25, ge=0.0)
    ridge_alpha: float = Field(1.0, gt=0.0)
    embeddings: bool = True  # add 3 PCs of the country's Stage-1 encoder to the features

    @pd.model_validator(mode="before")
    @classmethod
    def _short(cls, raw: Any) -> Any:
        if isinstance(raw, list | tuple | str):
            return {"targets": [raw] if isinstance(raw, str) else list(raw)}
        return raw


class DisplacementSettings(BaseModel):
    """How far the survey moved its published points (DHS's rule by default): urban up to
    ``urban_km``, rural up to ``rural_km``, a ``rural_far_share`` of rural ones up to
    ``rural_far_km``; zeros mean exact coordinates."""

    model_config = STRICT

    urban_km: float = Field(2.0, ge=0.0, strict=False)
    rural_km: float = Field(5.0, ge=0.0, strict=False)
    rural_far_share: float = Field(0.01, ge=0.0, le=1.0, strict=False)
    rural_far_km: float = Field(10.0, ge=0.0, strict=False)


class SurveySettings(BaseModel):
    """``surveys:``: a survey file (CSV with ``lon``/``lat`` in WGS 84, or a point layer) and its
    columns; ``handling: expectation`` spreads each cluster over the tiles it may truly be in
    (``ignore``: the tile it is published in), keeping tiles with at least ``min_mass`` expected
    clusters; ``inhabited_prior``: clusters are only in tiles the grid calls inhabited."""

    model_config = STRICT

    file: str = Field(min_length=1)
    name: str = Field("survey", min_length=1)
    value: str = "value"
    year: str = "year"
    urban: str = "urban"
    weight: str | None = None
    lon: str = "lon"
    lat: str = "lat"
    displacement: DisplacementSettings = Field(default_factory=DisplacementSettings)
    handling: Literal["expectation", "ignore"] = "expectation"
    min_mass: float = Field(0.3, ge=0.0, strict=False)  # chosen on dev seeds of the benchmark
    inhabited_prior: bool = True
