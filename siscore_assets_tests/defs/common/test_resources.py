"""The settings resource pins each step's torch / BLAS threads: a model trained in a run has the
same weights whatever the machine's core count (and whatever threads the process had before)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dagster import asset, materialize

from siscore_assets.core.model_settings import recipe_settings
from siscore_assets.core.models.scorer import score_images
from siscore_assets.core.models.scorer_training import TrainingInputs, train_scorer
from siscore_assets.defs.common.resources import SiscoreSettings
from siscore_assets_tests.core.models.toys import toy_clusters, toy_images

PX = 32


def trained_in_a_step(tmp_path, outer_threads: int, step_threads: int | None) -> dict:
    """A toy scorer trained inside an asset run by Dagster, the process first at
    ``outer_threads``: the threads the training saw and its scores."""
    seen: dict = {}

    @asset
    def toy_scorer(settings: SiscoreSettings) -> None:
        seen["threads"] = torch.get_num_threads()
        m = recipe_settings(
            "cpu",
            from_pretrained=False,
            input_px=PX,
            texture_px=2 * PX,
            steps=4,
            per_tier=3,
            eval_every=0,
            seeds=(0,),
            year_consistency=0.0,
        )
        data = TrainingInputs(toy_clusters(3, 12, seed=1, px=2 * PX), [[[0], [1], [2]]])
        model, _ = train_scorer(data, m, seed=7)
        seen["scores"] = score_images(model, toy_images(np.linspace(0, 1, 12), seed=2, px=2 * PX))

    before = torch.get_num_threads()
    torch.set_num_threads(outer_threads)
    try:
        settings = SiscoreSettings(data_root=str(tmp_path), step_threads=step_threads)
        assert materialize([toy_scorer], resources={"settings": settings}).success
    finally:
        torch.set_num_threads(before)
    return seen


def test_a_step_trains_on_the_configured_threads_whatever_the_process_had(tmp_path, monkeypatch):
    monkeypatch.delenv("SISCORE_STEP_THREADS", raising=False)
    one = trained_in_a_step(tmp_path, outer_threads=1, step_threads=None)
    four = trained_in_a_step(tmp_path, outer_threads=4, step_threads=None)
    assert one["threads"] == four["threads"] == 2  # the default, not the process's count
    np.testing.assert_array_equal(one["scores"], four["scores"])


@pytest.mark.parametrize("threads", [1, 3])
def test_the_step_threads_setting_is_what_training_sees(tmp_path, threads):
    assert trained_in_a_step(tmp_path, outer_threads=2, step_threads=threads)["threads"] == threads
