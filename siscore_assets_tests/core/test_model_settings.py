"""Model settings: ranges the schema refuses before any stage runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from siscore_assets.core.model_settings import ModelSettings, recipe_settings


@pytest.mark.parametrize("key", ["pretrain_epochs", "habitation_epochs"])
def test_pretraining_needs_at_least_one_epoch(key):
    """0 epochs passed the schema, then `habitation_model` failed on an empty history after it
    had replaced the model files (found by review); 1 is the least a recipe uses (smoke)."""
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        ModelSettings.model_validate({key: 0})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        recipe_settings("cpu").with_overrides(pretrain_epochs=0)
    assert recipe_settings("smoke").pretrain_epochs == 1
