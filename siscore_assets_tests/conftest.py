"""Shared fixtures: a tiny synthetic country that runs end to end in well under a minute."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per xdist worker: two workers with two threads each on two cores run the
    small test models several times slower than one thread each (oversubscription).  The runs'
    steps pin their threads (``settings.step_threads``): one there too."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        os.environ.setdefault("SISCORE_STEP_THREADS", "1")


TINY_COUNTRIES = """
default: SYN
countries:
  SYN:
    name: tiny synthetic
    years: [2016, 2017]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 14, ny: 14, tile_px: 64,
             granule_tiles: 7, n_annotators: 5, pretrain_images: 300}
    models: {seed: 0, input_px: 32, habitation_epochs: 4, habitation_input_px: 32,
             k_range_urban: [2, 3], k_range_rural: [2, 3], scorer_steps: 25, per_tier: 3,
             alpha_linearity: 1.0}
  TWO:
    name: second country with one year
    years: [2017]
    source: {kind: synthetic, seed: 3, x0: 13903, y0: 6163, nx: 6, ny: 6, tile_px: 64,
             granule_tiles: 6, n_annotators: 3, pretrain_images: 60}
  NOANN:
    name: synthetic imagery with a missing human annotation folder
    years: [2016]
    annotations: {missing}
    source: {kind: synthetic, seed: 5, x0: 13903, y0: 6163, nx: 6, ny: 6, tile_px: 64,
             granule_tiles: 6, n_annotators: 3, pretrain_images: 60}
"""


@pytest.fixture
def tiny_countries(tmp_path: Path) -> Path:
    path = tmp_path / "countries.yaml"
    path.write_text(
        textwrap.dedent(TINY_COUNTRIES).replace("{missing}", str(tmp_path / "no_such_folder"))
    )
    return path


SHARED_NK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nk_sample"


def select(*names: str):
    """An asset selection by name, with the other tables of any multi-asset named (they
    materialise together)."""
    from dagster import AssetSelection

    return AssetSelection.assets(*names).required_multi_asset_neighbors()
