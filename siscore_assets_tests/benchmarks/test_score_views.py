"""benchmarks/score_views.py: both runs score every year; one view moves nothing at 1 view."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks import score_views
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets_tests.core.models.test_fused_scoring import images, tiny_ensemble


def test_the_views_move_scores_and_the_years_are_compared(tmp_path):
    path = scorer_lib.save_scorer(tiny_ensemble((0, 1)), tmp_path / "scorer.pt")
    imgs = images(8)
    for year, block in ((2018, imgs[:4]), (2019, imgs[4:])):
        (tmp_path / "tiles" / str(year)).mkdir(parents=True)
        for i, im in enumerate(block):
            Image.fromarray(im).save(tmp_path / "tiles" / str(year) / f"p{i}.png")
    table = score_views.run(path, tmp_path / "tiles", 8)
    assert len(table) == 3  # two years' movements, one pair's agreement
    moved = [float(v.split(" / ")[0]) for v in table["8 views"][:2]]
    assert all(m > 0 for m in moved)
    assert table["what"].iloc[2].startswith("year agreement 2018-2019 (4 places")
    assert np.isfinite(float(table["one view"].iloc[2]))
