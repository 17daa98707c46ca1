"""A monsoon STAC country (no scene clear over the AOI, every scene over ``max_scene_cloud``)
through the ingest assets with ``scene_choice: tile``: each tile's clearest scene recorded beside
the selection, every AOI tile usable in `patches` (at the country's zoom, 14 or not), one
`granules` row per granule covering all its tiles; with the default per-granule choice, a
third."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, materialize

from siscore_assets.defs.common.resources import Warehouse
from siscore_assets_tests.conftest import select
from siscore_assets_tests.core.imagery.stac.cloudy import (
    YEAR,
    cloudy_source,
    write_cloudy_catalogue,
)
from siscore_assets_tests.core.imagery.stac.double import StacDouble
from siscore_assets_tests.fixtures.definitions import definitions_for

pytestmark = pytest.mark.xdist_group("stac_tile_choice")


@pytest.mark.parametrize("choice, zoom", [("granule", 14), ("tile", 14), ("tile", 15)])
def test_monsoon_country_per_tile_choice(tmp_path: Path, choice: str, zoom: int):
    with StacDouble(tmp_path / "cogs") as api:
        api.items = write_cloudy_catalogue(tmp_path / "cogs", api.url)
        countries = tmp_path / "countries.yaml"
        countries.write_text(
            yaml.safe_dump(
                {
                    "default": "MON",
                    "countries": {
                        "MON": {
                            "name": "Monsoon test country",
                            "years": [YEAR],
                            "zoom": zoom,
                            "source": cloudy_source(api.url, scene_choice=choice),
                            "districts": "none",
                            "proxies": "none",
                            "covariates": "none",
                        }
                    },
                }
            )
        )
        defs, db = definitions_for(countries, tmp_path)
        result = materialize(
            list(defs.assets),
            selection=select("stac_scenes", "granules", "patches"),
            partition_key=f"MON|{YEAR}",
            resources=dict(defs.resources),
            instance=DagsterInstance.ephemeral(),
        )
    assert result.success
    wh = Warehouse(database=str(db))
    patches = wh.read("patches", {"country": "MON", "year": YEAR}, order_by="tile_id")
    scenes = wh.read("stac_scenes", {"country": "MON", "year": YEAR}, order_by="item_id")
    granules = wh.read("granules", {"country": "MON", "year": YEAR})
    assert granules["granule_id"].is_unique  # one overlay per granule, never overwritten
    g = granules.iloc[0]
    assert (patches["x"] - g["tile_x0"]).between(0, g["tiles_x"] - 1).all()
    assert (patches["y"] - g["tile_y0"]).between(0, g["tiles_y"] - 1).all()
    assert (patches["z"] == zoom).all()
    usable = (patches["status"] == "ok").mean()
    record = tmp_path / "data" / "MON" / "granules" / str(YEAR) / "stac_tile_scenes.csv"
    if choice == "granule":
        assert scenes["chosen"].sum() == 1 and usable < 0.5
        assert not record.exists()
    else:
        assert scenes["chosen"].sum() >= 3 and usable == 1.0
        tiles = pd.read_csv(record)
        assert sorted(tiles["tile_id"]) == sorted(patches["tile_id"])
        assert (tiles["unusable_share"] <= 0.05).mean() > 0.9
