"""A STAC country runs the whole graph unchanged: imagery from the loopback STAC double (two UTM
zones, two years), Stage-1 inputs and POGs from folders, every asset materialised."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
import rasterio
import yaml
from dagster import DagsterInstance

from siscore_assets.defs.orchestration.runner import materialize_country
from siscore_assets_tests.core.imagery.stac.double import StacDouble, source_block, write_catalogue
from siscore_assets_tests.defs.test_tile_folder_country import make_sample
from siscore_assets_tests.fixtures.definitions import definitions_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("stac_country")]


def _year_copy(item: dict, year: int) -> dict:
    """The same scene acquired a year earlier (same pixels): a second year for change maps."""
    props = {
        **item["properties"],
        "datetime": item["properties"]["datetime"].replace("2022-", f"{year}-"),
    }
    return {**item, "id": f"{item['id']}_{year}", "properties": props}


def test_stac_country_materialises_every_asset(tmp_path: Path):
    sample = tmp_path / "sample"
    make_sample(sample)  # clusters/, pretrain/, annotations/ (its tiles/ folder is not used)
    with StacDouble(tmp_path / "cogs") as api:
        items = write_catalogue(tmp_path / "cogs", api.url)
        api.items = items + [_year_copy(it, 2021) for it in items]
        countries = tmp_path / "countries.yaml"
        countries.write_text(
            yaml.safe_dump(
                {
                    "default": "STC",
                    "countries": {
                        "STC": {
                            "name": "STAC test country",
                            "years": [2021, 2022],
                            "source": source_block(
                                api.url, granule_patches={"per_side": 4, "px": 32}
                            ),
                            "clusters": str(sample / "clusters"),
                            "pretrain": str(sample / "pretrain"),
                            "annotations": str(sample / "annotations"),
                            "districts": "none",
                            "proxies": "none",
                            "covariates": "none",
                            "models": {
                                "seed": 0,
                                "habitation_input_px": 16,
                                "habitation_epochs": 2,
                                "folder_urban_clusters": 2,
                                "input_px": 16,
                                "normalize": "per_image",
                                "sampling": "cluster",
                                "scorer_steps": 4,
                                "per_tier": 2,
                            },
                        }
                    },
                }
            )
        )
        defs, db = definitions_for(countries, tmp_path)
        materialize_country(
            defs, "STC", [2021, 2022], instance=DagsterInstance.ephemeral(), log=lambda _: None
        )
    with duckdb.connect(str(db), read_only=True) as conn:
        scenes = conn.execute(
            "SELECT year, granule_id, item_id FROM stac_scenes WHERE chosen ORDER BY ALL"
        ).fetchall()
        grid = conn.execute(
            "SELECT year, count(*), min(score), max(score) FROM siscore_grid "
            "GROUP BY year ORDER BY year"
        ).fetchall()
        change = conn.execute("SELECT count(*) FROM siscore_change WHERE year = 2022").fetchone()[0]
        patches = conn.execute(
            "SELECT year, granule_id, count(*), count(*) FILTER (WHERE status = 'ok') "
            "FROM granule_patches GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        patch_scores = conn.execute(
            "SELECT year, count(*), min(score), max(score), count(DISTINCT epsg) "
            "FROM granule_siscore GROUP BY year ORDER BY year"
        ).fetchall()
        overlays = conn.execute(
            "SELECT year, granule_id, crs, width_px, patches_scored FROM mosaic_files "
            "WHERE grid = 'granule' ORDER BY ALL"
        ).fetchall()
        filled = conn.execute(
            "SELECT m.path, p.left, p.bottom, p.right, p.top, s.score, s.inhabited "
            "FROM mosaic_files m JOIN granule_siscore s USING (country, year, granule_id) "
            "JOIN granule_patches p USING (country, year, tile_id) "
            "WHERE m.grid = 'granule' AND m.year = 2022"
        ).fetchall()
    assert scenes == [
        (2021, "51SZH", "51_clear_2021"),
        (2021, "52SBC", "52_b0400_2021"),
        (2022, "51SZH", "51_clear"),
        (2022, "52SBC", "52_b0400"),
    ]
    assert [(y, n) for y, n, *_ in grid] == [(2021, 6), (2022, 6)]
    assert all(0 <= lo <= hi <= 1 for *_, lo, hi in grid)
    assert change == 6
    # The reproduction's granule patching beside the grid: ids granule/row/col in each UTM zone,
    # scored by the same scorer and filled back into one overlay per granule in its own CRS.
    assert [(y, g) for y, g, *_ in patches] == [
        (2021, "51SZH"),
        (2021, "52SBC"),
        (2022, "51SZH"),
        (2022, "52SBC"),
    ]
    usable = {(y, g): ok for y, g, _, ok in patches}
    assert all(ok > 0 for ok in usable.values())
    assert [(y, n) for y, n, *_ in patch_scores] == [
        (2021, sum(usable[2021, g] for g in ("51SZH", "52SBC"))),
        (2022, sum(usable[2022, g] for g in ("51SZH", "52SBC"))),
    ]
    assert all(0 <= lo <= hi <= 1 and zones == 2 for _, _, lo, hi, zones in patch_scores)
    assert [(y, g, crs) for y, g, crs, *_ in overlays] == [
        (2021, "51SZH", "EPSG:32651"),
        (2021, "52SBC", "EPSG:32652"),
        (2022, "51SZH", "EPSG:32651"),
        (2022, "52SBC", "EPSG:32652"),
    ]
    assert all(w % 32 == 0 for *_, w, _ in overlays)
    assert len(filled) == sum(n for y, *_, n in overlays if y == 2022) or filled
    for (
        path,
        left,
        bottom,
        right,
        top,
        score,
        inhabited,
    ) in filled:  # each patch's own pixels carry its score
        with rasterio.open(path) as src:
            r, c = src.index((left + right) / 2, (top + bottom) / 2)
            value = src.read(1, window=((r, r + 1), (c, c + 1)))[0, 0]
            assert src.xy(r, c)[0] > left and src.xy(r, c)[1] < top
        assert (value == pytest.approx(score, abs=1e-6)) if inhabited else np.isnan(value)
    # every asset read what it needed from the indexed stores: no read record is left on disk
    # (262 KB a 256 px tile), for the grid tiles or the granule patches of either year
    country = tmp_path / "data" / "STC"
    left = [p.relative_to(country) for p in country.rglob("*") if p.is_file()]
    assert not [p for p in left if p.parts[0] in ("stac_tiles", "stac_patches")], left
