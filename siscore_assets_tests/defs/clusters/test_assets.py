"""`habitation_model`'s unlabelled sample: the scorer's pixel budget at the mean teacher's size."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from siscore_assets.core.model_settings import recipe_settings
from siscore_assets.defs.clusters import assets
from siscore_assets.defs.common import data


@pytest.mark.parametrize(
    "recipe, cap",
    [("paper", 250), ("cpu", data.MAX_UNLABELLED_TILES), ("smoke", data.MAX_UNLABELLED_TILES)],
)
def test_the_mean_teacher_samples_tiles_within_the_pixel_budget(monkeypatch, recipe, cap):
    """At 256 px (the `paper` recipe) the mean teacher took 4,000 tiles x every year, 12 GiB as
    float at 4 years, where the scorer takes 250 at that size (found by review); at 64 px or less
    (`cpu`: 48 px, PRK's 106 tiles) the cap, and so the sample, is as before."""
    asked = {}

    def sample(settings, warehouse, country, **kwargs):
        asked.update(kwargs)
        return iter([])

    monkeypatch.setattr(assets, "tile_year_sample", sample)
    m = recipe_settings(recipe)
    country = SimpleNamespace(models=m, clusters_from_folder=False)
    un, groups = assets.unlabelled_images(country, None, None, m.pretrain_px)
    assert asked["max_tiles"] == cap == data.unlabelled_tile_cap(m.pretrain_px)
    assert asked["holdout"] == data.YEAR_HOLDOUT_SHARE and len(un) == len(groups) == 0
