"""The synthetic country's spec: invalid countries are refused, valid specs are hashable."""

from __future__ import annotations

import dataclasses

import pytest

from siscore_assets.core.imagery.synthetic import SyntheticSpec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tile_px": 16},
        {"tile_px": 512},
        {"nx": 3},
        {"ny": 3},
        {"years": ()},
        {"years": (2017, 2016)},
        {"years": (2016, 2016)},
        {"n_provinces": 0},
        {"n_districts": 2, "n_provinces": 3},
        {"nx": 4, "ny": 4, "n_districts": 5},
        {"n_annotators": 1},
    ],
)
def test_invalid_specs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticSpec(**kwargs)


def test_spec_is_frozen_and_hashable() -> None:
    a, b = SyntheticSpec(), SyntheticSpec()
    assert a == b and hash(a) == hash(b)  # the sources cache countries per spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.seed = 8  # type: ignore[misc]
