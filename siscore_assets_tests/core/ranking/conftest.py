"""Shared fixtures for the POG tests: the NK sample's annotation folder and its ensemble."""

from __future__ import annotations

import pytest

from siscore_assets.core.ranking import EnsembleResult, Pog, ensemble, read_annotation_folder
from siscore_assets_tests.conftest import SHARED_NK

NK = SHARED_NK / "annotations"  # the NK sample annotators' POGs (shared/, not in the repo)
IDS = list(range(22))
EXAMPLE = "3=4=6>1=2=7>0>5=8=9>10>14=16=20>15=18>11=13>12=17=19>21"

needs_nk = pytest.mark.skipif(not (NK / "pogs.txt").is_file(), reason="NK sample not present")


@pytest.fixture(scope="module")
def nk() -> dict[str, Pog]:
    if not (NK / "pogs.txt").is_file():
        pytest.skip("NK sample not present")
    return read_annotation_folder(NK, known_ids=IDS)


@pytest.fixture(scope="module")
def nk_result(nk: dict[str, Pog]) -> EnsembleResult:
    return ensemble(list(nk.values()), IDS, names=list(nk))
