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


def test_every_setting_is_in_the_countries_reference():
    """Found by review: ``stage1_features`` and ``stage1_extra_images`` were missing from
    docs/countries.md's "Every field, with its default" though the new-country guide sets one."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "countries.md").read_text()
    section = doc.split("### Every field, with its default")[1].split("\n## ")[0]
    named = {n for row in re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", section, re.M) for n in row}
    assert set(ModelSettings.model_fields) - named == set()
