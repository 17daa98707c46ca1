"""The tiny country of the new-country walkthrough test (``docs/new-country.md``): a tile folder
made in tmp with imagery only -- no cluster folder, no pretraining folder, no POGs -- whose
tiles' true kind and development level are known, so a test can label and rank them as a person
looking at them would."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PX = 32
YEARS = (2016, 2017)
KINDS = ("urban", "rural", "uninhabited")
#: Tiles per year: a 6 x 3 block; kind by column pair, level rising along each pair.
N_TILES = 18
Y0, X0 = 6300, 14000


@dataclass(frozen=True)
class Tile:
    """One tile-year of the tiny country: its warehouse id, year, kind and built-up level."""

    tile_id: str
    year: int
    kind: str
    level: float


def tiles() -> list[Tile]:
    """Every tile-year: 6 urban (level 0.75-0.95), 6 rural (0.25-0.45) and 6 uninhabited (0) a
    year, each a little more built up in the second year."""
    out = []
    for year in YEARS:
        for k in range(N_TILES):
            kind = KINDS[k % 3]
            rank = k // 3  # 0..5 within its kind
            base = {"urban": 0.75, "rural": 0.25, "uninhabited": 0.0}[kind]
            step = 0.0 if kind == "uninhabited" else 0.04 * rank + 0.02 * (year - YEARS[0])
            y, x = Y0 + k // 6, X0 + k % 6
            out.append(Tile(f"14/{x}/{y}", year, kind, base + step))
    return out


def image(level: float, seed: int) -> np.ndarray:
    """Bright 'built' pixels in proportion to ``level`` on a green-brown background."""
    rng = np.random.default_rng(seed)
    img = np.empty((PX, PX, 3))
    img[...] = (70, 100, 60)
    img[rng.random((PX, PX)) < 0.03 + 0.8 * level] = (205, 200, 190)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def make_country(root: Path) -> dict[tuple[str, int], Tile]:
    """Write ``<root>/tiles/<year>/<y>_<x>.png`` (the NK sample's layout) and nothing else;
    the tile-years by (tile_id, year)."""
    out = {}
    for i, t in enumerate(tiles()):
        _, x, y = t.tile_id.split("/")
        path = root / "tiles" / str(t.year) / f"{y}_{x}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image(t.level, 1000 + i)).save(path)
        out[(t.tile_id, t.year)] = t
    return out


def countries_yaml(root: Path, code: str = "NEW", pretrain: str | None = None) -> str:
    """The country's entry for a tile folder with the walkthrough's lines: Stage 1 from its own
    tiles (``clusters: kmeans``, the descriptor features), the default recipe at tiny sizes
    (seconds, not hours); ``pretrain``: ``kit`` (the kit's merged labels), once they exist."""
    labels = f'\n    pretrain: "{pretrain}"' if pretrain is not None else ""
    return f"""
default: {code}
countries:
  {code}:
    name: walkthrough country
    years: [{", ".join(map(str, YEARS))}]
    source: {{kind: tile_folder, root: "{root}", root_env: SISCORE_TEST_NEW_UNSET, tiles: tiles}}
    clusters: kmeans{labels}
    annotations: generated
    districts: none
    proxies: none
    covariates: none
    models: {{seed: 0, habitation_input_px: 16, habitation_epochs: 2, habitation_holdout: 0.25,
             k_range_urban: [2, 2], k_range_rural: [2, 2], stage1_features: stats,
             input_px: 16, scorer_steps: 4, per_tier: 2, scorer_seeds: [0],
             holdout_per_cluster: 1, val_per_cluster: 1, gradcam_tiles: 1}}
"""
