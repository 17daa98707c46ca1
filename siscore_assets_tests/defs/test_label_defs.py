"""The labelling kit and `habitation_labels` assets on a hand-made warehouse (patch stacks only):
the kit page, exports merged into the table and the contract file, a bad export failing with its
FILE:LINE and nothing written, and no export leaving the partition empty."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery.patches import save_stack
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.data import LABEL_KIT_FILE as KIT_FILE
from siscore_assets.defs.common.data import MERGED_LABELS_FILE as MERGED_FILE
from siscore_assets_tests.conftest import TINY_COUNTRIES, select

pytestmark = pytest.mark.xdist_group("label_defs")


@pytest.fixture
def platform(tmp_path: Path) -> SimpleNamespace:
    countries = tmp_path / "countries.yaml"
    countries.write_text(TINY_COUNTRIES.replace("{missing}", str(tmp_path / "no_such_folder")))
    defs = build_definitions(
        load_countries(countries),
        data_root=str(tmp_path / "data"),
        countries_file=str(countries),
        warehouse_path=str(tmp_path / "wh.duckdb"),
    )
    wh, data = defs.resources["warehouse"], tmp_path / "data"
    rng = np.random.default_rng(1)
    for year in (2016, 2017):
        tile_ids = [f"14/{13903 + i}/6163" for i in range(12)]
        status = ["ok"] * 11 + ["cloudy"]
        rows = np.cumsum([s == "ok" for s in status]) - 1
        wh.write(
            "patches",
            pd.DataFrame(
                {
                    "country": "SYN",
                    "year": year,
                    "tile_id": tile_ids,
                    "status": status,
                    "image_row": np.where(np.array(status) == "ok", rows, -1),
                    "stack_path": str(data / "SYN" / "patches" / f"{year}.npy"),
                }
            ),
            {"country": "SYN", "year": year},
        )
        save_stack(
            rng.integers(0, 255, (11, 16, 16, 3), dtype=np.uint8),
            data / "SYN" / "patches" / f"{year}.npy",
        )
    folder = data / "SYN" / "labels"
    folder.mkdir(parents=True)
    return SimpleNamespace(defs=defs, data=data, db=tmp_path / "wh.duckdb", folder=folder)


def _materialize(platform, name: str):
    return materialize(
        list(platform.defs.assets),
        selection=select(name),
        partition_key="SYN",
        resources=dict(platform.defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _rows(platform) -> pd.DataFrame:
    with duckdb.connect(str(platform.db), read_only=True) as con:
        return con.execute(
            "SELECT * FROM habitation_labels WHERE country = 'SYN' ORDER BY tile_id, year"
        ).df()


def test_label_kit_asset_writes_the_sampled_usable_tiles(platform):
    result = _materialize(platform, "label_kit")
    assert result.success
    page = (platform.data / "SYN" / KIT_FILE).read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    data = json.loads(page.split('id="kit-data">', 1)[1].split("</script>", 1)[0])
    shown = {(t["tile_id"], t["year"]) for t in data["tiles"]}
    assert len(shown) == 22  # every usable tile-year (fewer than the kit's size); not the cloudy
    assert ("14/13914/6163", 2016) not in shown
    md = result.asset_materializations_for_node("label_kit")[0].metadata
    assert md["tiles"].value == 22 and md["years"].value == 2


def test_one_year_first_the_kit_and_the_merge_use_the_years_ingested(platform):
    """The walkthrough ingests one year first and labels it: the kit and the merge use the
    years that have patches (found by review: both failed on 2017's missing `patches`)."""
    platform.defs.resources["warehouse"].clear("patches", {"country": "SYN", "year": 2017})
    kit = _materialize(platform, "label_kit")
    assert kit.success
    md = kit.asset_materializations_for_node("label_kit")[0].metadata
    assert md["tiles"].value == 11 and md["years"].value == 1
    (platform.folder / "a.labels.csv").write_text("tile_id,year,label\n14/13903/6163,2016,urban\n")
    assert _materialize(platform, "habitation_labels").success
    assert _rows(platform)[["tile_id", "year", "urban"]].values.tolist() == [
        ["14/13903/6163", 2016, 1.0]
    ]
    # a label of the year not ingested yet is the usual line
    (platform.folder / "a.labels.csv").write_text("tile_id,year,label\n14/13903/6163,2017,urban\n")
    failed = _materialize(platform, "habitation_labels")
    errors = [str(e.event_specific_data.error) for e in failed.all_events if e.is_step_failure]
    assert not failed.success and "a.labels.csv:2" in errors[0] and "2017" in errors[0], errors


def test_exports_merge_into_the_table_and_the_contract_file(platform):
    first = _materialize(platform, "habitation_labels")  # no export yet: empty, not a failure
    assert first.success
    md = first.asset_materializations_for_node("habitation_labels")[0].metadata
    assert md["rows"].value == 0 and "no label exports" in md["status"].value
    (platform.folder / "ann.labels.csv").write_text(
        "tile_id,year,label\n14/13903/6163,2016,urban\n14/13904/6163,2017,rural\n"
    )
    (platform.folder / "bo.labels.csv").write_text(
        "tile_id,year,label\n14/13903/6163,2016,rural\n14/13904/6163,2017,rural\n"
    )
    result = _materialize(platform, "habitation_labels")
    assert result.success
    merged = pd.read_csv(platform.data / "SYN" / MERGED_FILE)
    assert list(merged.columns) == [
        "tile_id",
        "year",
        "urban",
        "rural",
        "uninhabited",
        "n_annotators",
    ]
    assert merged.to_dict("list") == {
        "tile_id": ["14/13903/6163", "14/13904/6163"],
        "year": [2016, 2017],
        "urban": [0.5, 0.0],
        "rural": [0.5, 1.0],
        "uninhabited": [0.0, 0.0],
        "n_annotators": [2, 2],
    }
    table = _rows(platform)
    assert table["rural"].tolist() == [0.5, 1.0] and set(table["country"]) == {"SYN"}
    md = result.asset_materializations_for_node("habitation_labels")[0].metadata
    assert md["annotators"].value == 2 and md["shared_tile_years"].value == 2

    # A bad export (the cloudy tile is not usable): the asset fails naming it, nothing changes.
    (platform.folder / "cy.labels.csv").write_text("tile_id,year,label\n14/13914/6163,2016,urban\n")
    bad = _materialize(platform, "habitation_labels")
    assert not bad.success
    errors = "\n".join(
        str(e.event_specific_data.error) for e in bad.all_events if e.is_step_failure
    )
    assert f"{platform.folder / 'cy.labels.csv'}:2: unknown tile 14/13914/6163 in 2016" in errors
    assert pd.read_csv(platform.data / "SYN" / MERGED_FILE).equals(merged)
    assert len(_rows(platform)) == 2

    # Every export removed: the partition is empty and the derived file gone.
    for f in platform.folder.iterdir():
        f.unlink()
    assert _materialize(platform, "habitation_labels").success
    assert not (platform.data / "SYN" / MERGED_FILE).exists()


def test_sensor_runs_the_merge_when_exports_change(platform):
    from dagster import build_sensor_context

    from siscore_assets.defs.ranking.labels import LABEL_SENSOR

    sensor = platform.defs.resolve_sensor_def(LABEL_SENSOR)

    def tick(cursor):
        ctx = build_sensor_context(
            cursor=cursor,
            definitions=platform.defs,
            resources={"settings": platform.defs.resources["settings"]},
        )
        result = sensor.evaluate_tick(ctx)
        return [r.partition_key for r in result.run_requests or []], result.cursor

    runs, cursor = tick(None)
    assert runs == []  # the first tick records a baseline
    assert tick(cursor) == ([], cursor)
    export = platform.folder / "ann.labels.csv"
    export.write_text("tile_id,year,label\n14/13903/6163,2016,urban\n")
    runs, cursor = tick(cursor)
    assert runs == ["SYN"]
    assert tick(cursor)[0] == []
    export.unlink()  # removed: the merge runs again (and empties the partition)
    assert tick(cursor)[0] == ["SYN"]


def test_cli_kit_writes_the_country_page(platform, tmp_path, monkeypatch):
    """`siscore label kit` reads the same warehouse and tile stores as the asset."""
    from typer.testing import CliRunner

    from siscore_assets.cli import app

    monkeypatch.setenv("SISCORE_COUNTRIES", str(tmp_path / "countries.yaml"))
    monkeypatch.setenv("SISCORE_DATA_ROOT", str(platform.data))
    monkeypatch.setenv("SISCORE_WAREHOUSE", str(platform.db))
    out = tmp_path / "kit.html"
    res = CliRunner().invoke(
        app, ["label", "kit", "--country", "SYN", "--n", "5", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "5 tile-years" in res.output
    data = json.loads(out.read_text().split('id="kit-data">', 1)[1].split("</script>", 1)[0])
    assert len(data["tiles"]) == 5 and {t["year"] for t in data["tiles"]} == {2016, 2017}
    res = CliRunner().invoke(app, ["label", "kit", "--country", "NOPE", "--out", str(out)])
    assert res.exit_code == 2 and "NOPE" in res.stderr
