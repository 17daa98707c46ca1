"""The STAC double with its catalogue: COGs are written once per session, the server per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from siscore_assets.core.imagery.stac.config import StacSource, parse_stac_source
from siscore_assets_tests.core.imagery.stac.double import (
    FAILING,
    StacDouble,
    source_block,
    write_catalogue,
)

PLACEHOLDER = "http://stac.invalid"


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("stac_cogs")
    return folder, write_catalogue(folder, PLACEHOLDER)


@pytest.fixture
def api(catalogue):
    folder, items = catalogue
    with StacDouble(folder, failing=dict(FAILING)) as double:
        double.items = [_rebase(it, double.url) for it in items]
        yield double


def _rebase(item: dict, url: str) -> dict:
    assets = {
        k: {**a, "href": a["href"].replace(PLACEHOLDER, url)} for k, a in item["assets"].items()
    }
    return {**item, "assets": assets}


@pytest.fixture
def cfg(api) -> StacSource:
    return parse_stac_source(source_block(api.url), "test countries file: country STC")
