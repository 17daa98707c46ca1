"""What averaging a scorer over its tiles' dihedral views (``score_views``) does to a trained
scorer on a tile folder: how far each year's scores move from one view, and the year-to-year
agreement of the places present in every year, one view against ``--views``.

    python -m benchmarks.score_views --checkpoint data/PRK/models/scorer.pt \\
        [--tiles ../shared/data/nk_sample/tiles] [--views 8]

The folder holds ``<year>/<name>.png``; a name is one place across years.  The checkpoint's
own ``views`` is ignored: both runs set it.  Scores are the network's, before the uninhabited
filter's zeros and without radiometric normalisation (``radiometry: none``, the ``cpu``
recipe's), so the figure is the views' effect alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from siscore_assets.core.imagery.tile_folder import read_rgb
from siscore_assets.core.models import fused_scoring
from siscore_assets.core.models import scorer as scorer_lib

REPO = Path(__file__).resolve().parents[1]
BATCH = 256


def with_views(model, views: int):
    """The model, every member set to average ``views`` dihedral views."""
    for m in fused_scoring.members(model):
        m.config = dataclasses.replace(m.config, views=views)
    model.config = dataclasses.replace(model.config, views=views)
    return model


def year_files(tiles: Path) -> dict[int, list[Path]]:
    """{year: its PNG tiles} of a tile folder (names only: tiles are read a batch at a time)."""
    out = {
        int(d.name): sorted(d.glob("*.png"))
        for d in sorted(tiles.iterdir())
        if d.is_dir() and d.name.isdigit()
    }
    if not out:
        raise SystemExit(f"{tiles}: no <year>/ folders of PNG tiles")
    return out


def run(checkpoint: Path, tiles: Path, views: int) -> pd.DataFrame:
    torch.manual_seed(0)
    model = scorer_lib.load_scorer(checkpoint, device="cpu")
    years = year_files(tiles)
    scores: dict[int, dict[int, pd.Series]] = {1: {}, views: {}}
    for y, files in years.items():
        got: dict[int, list[np.ndarray]] = {v: [] for v in {1, views}}
        for lo in range(0, len(files), BATCH):  # a batch of tiles in memory, never a year
            imgs = np.stack([read_rgb(f) for f in files[lo : lo + BATCH]])
            for v in got:
                got[v].append(scorer_lib.score_images(with_views(model, v), imgs))
        for v in got:  # one float per tile; joined once, not per batch
            scores[v][y] = pd.Series(np.concatenate(got[v]), [f.stem for f in files])
    rows = []
    for y in years:
        move = (scores[views][y] - scores[1][y]).abs()
        rows.append(
            {
                "what": f"{y}: |score({views} views) - score(1 view)| mean / max",
                "one view": "",
                f"{views} views": f"{move.mean():.4f} / {move.max():.4f}",
            }
        )
    wide = {v: pd.DataFrame(s).dropna() for v, s in scores.items()}
    ys = sorted(years)
    for a, b in zip(ys[:-1], ys[1:], strict=True):
        rows.append(
            {
                "what": f"year agreement {a}-{b} ({len(wide[1])} places in every year), Spearman",
                "one view": f"{spearmanr(wide[1][a], wide[1][b]).statistic:.3f}",
                f"{views} views": f"{spearmanr(wide[views][a], wide[views][b]).statistic:.3f}",
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "data/PRK/models/scorer.pt")
    ap.add_argument("--tiles", type=Path, default=REPO.parent / "shared/data/nk_sample/tiles")
    ap.add_argument("--views", type=int, choices=(2, 4, 8), default=8)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    table = run(a.checkpoint, a.tiles, a.views)
    with pd.option_context("display.width", 160, "display.max_colwidth", 90):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
