"""The walkthrough of ``docs/new-country.md`` on a tiny country that arrives with imagery only
(a tile folder: no cluster folder, no pretraining folder, no POGs):

`siscore run` (ingest, the labelling kit, a stop at Stage 1) -> the kit labelled in headless
Chromium by two people (keys, clicks), exports dropped into ``<data root>/<CODE>/labels/`` where
the label sensor looks -> `habitation_labels` -> `siscore run` again: Stage 1 from those labels
(descriptor filter, clusters fitted on the country's own tiles), the annotation kit, a stop
before the POGs -> the kit ranked in Chromium by two people, ``<name>.pog`` dropped into the
annotation folder where the annotation sensor looks -> POGs and ensemble by the sensors' own
runs -> everything else (scorer at toy sizes, siscore_grid, rasters, tables, web map).

Every step is the one the walkthrough tells a person to take; the runs the sensors request are
executed as the daemon would.  The two "people" see what the test knows of each tile (its kind,
its built-up level), as a person would see it in the picture.  Chromium comes from Debian
(``scripts/setup_browser.sh``); a missing browser fails, SISCORE_SKIP_BROWSER=1 skips, as in
the kits' own browser tests.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    DagsterInstance,
    build_sensor_context,
    materialize,
)

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.data import LABEL_KIT_FILE
from siscore_assets.defs.common.data import MERGED_LABELS_FILE as MERGED_FILE
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets.defs.orchestration.runner import (
    COUNTRY,
    YEARLY,
    RunFailed,
    materialize_country,
    plan_waves,
)
from siscore_assets.defs.ranking.kit import KIT_FILE as POG_KIT_FILE
from siscore_assets.defs.ranking.labels import LABEL_SENSOR
from siscore_assets.defs.ranking.sensors import ANNOTATOR_JOB, REFRESH_JOB, SENSOR_NAME
from siscore_assets_tests.defs import walkthrough_country as wc
from siscore_assets_tests.fixtures.browser import chromium, open_fresh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

CODE = "NEW"


# ---- the platform ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("walkthrough")
    truth = wc.make_country(root / "imagery")
    home = root / "dagster_home"
    home.mkdir()
    p = SimpleNamespace(
        root=root,
        truth=truth,
        data=root / "data",
        db=root / "warehouse.duckdb",
        # persistent: the sensors' dynamic partitions and runs are resolved through it
        instance=DagsterInstance.local_temp(str(home)),
        done=set(),  # asset keys materialised so far
    )
    configure(p, pretrain=None)
    return p


def configure(p: SimpleNamespace, pretrain: str | None) -> None:
    """Write the countries file (``pretrain``: ``kit`` once labels exist) and load the
    definitions from it, as a restarted ``siscore`` or code server would."""
    countries = p.root / "countries.yaml"
    countries.write_text(textwrap.dedent(wc.countries_yaml(p.root / "imagery", CODE, pretrain)))
    p.defs = build_definitions(
        load_countries(countries),
        data_root=str(p.data),
        countries_file=str(countries),
        warehouse_path=str(p.db),
    )


def _upstream(defs, targets: list[str]) -> set[AssetKey]:
    assets = {k: a for a in defs.assets for k in a.keys}
    need, todo = set(), [AssetKey(t) for t in targets]
    while todo:
        key = todo.pop()
        if key in need or key not in assets:
            continue
        need.add(key)
        todo += [d.asset_key for spec in assets[key].specs for d in spec.deps]
        todo += list(assets[key].keys)
    return need


def run_step(p: SimpleNamespace, targets: list[str] | None) -> list[str]:
    """Materialise ``targets`` and whatever they need that is not yet materialised (``None``:
    everything left), wave by wave and partition by partition, as ``siscore run`` does; the
    annotator partitions are left to the annotation sensor's runs."""
    want = _upstream(p.defs, targets) if targets is not None else None
    years = wc.YEARS
    ran = []
    for wave in plan_waves(p.defs):
        if wave.kind not in (COUNTRY, YEARLY):
            continue
        keys = [k for k in wave.keys if k not in p.done and (want is None or k in want)]
        if not keys:
            continue
        parts = [CODE] if wave.kind == COUNTRY else [country_year_key(CODE, y) for y in years]
        for part in parts:
            result = materialize(
                list(p.defs.assets),
                selection=keys,
                partition_key=part,
                resources=dict(p.defs.resources),
                instance=p.instance,
                raise_on_error=False,
            )
            assert result.success, _failures(result)
        p.done.update(keys)
        ran += [k.to_user_string() for k in keys]
    return ran


def _failures(result) -> str:
    return "\n".join(
        str(e.event_specific_data.error)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data is not None
    )


def tick(p: SimpleNamespace, name: str, cursor: str | None):
    """One evaluation of a sensor, its partition requests applied as the daemon would."""
    sensor = p.defs.resolve_sensor_def(name)
    ctx = build_sensor_context(
        instance=p.instance,
        instance_ref=p.instance.get_ref(),
        cursor=cursor,
        definitions=p.defs,
        resources={"settings": p.defs.resources["settings"]},
    )
    result = sensor.evaluate_tick(ctx)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, AddDynamicPartitionsRequest)
        p.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result.run_requests or [], result.cursor or cursor


def run_request(p: SimpleNamespace, sensor: str, request) -> None:
    """What the daemon does with a sensor's run request: the job (the sensor's own when the
    request names none), on the partition, tagged."""
    name = request.job_name or p.defs.resolve_sensor_def(sensor).job_name
    job = p.defs.resolve_job_def(name)
    result = job.execute_in_process(
        partition_key=request.partition_key,
        instance=p.instance,
        tags=dict(request.tags),
        raise_on_error=False,
    )
    assert result.success, _failures(result)
    p.done.update(job.asset_layer.executable_asset_keys)


def query(p: SimpleNamespace, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(p.db), read_only=True) as con:
        return con.execute(sql).df()


def meta(p: SimpleNamespace, key: str) -> dict:
    event = p.instance.get_latest_materialization_event(AssetKey(key))
    assert event is not None, f"{key} was never materialised"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


# ---- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("walkthrough-downloads")) as driver:
        yield driver


def export(d, name: str, suffix: str) -> Path:
    box = d.find_element("id", "annotator-name")
    box.clear()
    box.send_keys(name)
    d.find_element("id", "export").click()
    path, end = d.downloads / f"{name}{suffix}", time.monotonic() + 15
    while time.monotonic() < end:
        if path.is_file() and not list(d.downloads.glob("*.crdownload")):
            return path
        time.sleep(0.05)
    names = sorted(f.name for f in d.downloads.iterdir())
    raise AssertionError(f"{path.name} not downloaded: {names}")


def kit_data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(text.split('id="kit-data">', 1)[1].split("</script>", 1)[0])


# ---- the walk -------------------------------------------------------------------------------


def label_in_browser(d, page: Path, truth: dict) -> tuple[Path, Path, dict]:
    """Two people label the kit: "ann" by keys (every tile as it looks), "bo" by clicks in the
    one-tile view (calls the two most built-up rural tiles urban and skips the last tile).
    Returns both exports and the votes each tile-year got."""
    from selenium.webdriver import ActionChains

    shown = [(t["tile_id"], int(t["year"])) for t in kit_data(page)["tiles"]]
    assert len(shown) == len(truth)  # a kit of 240 shows every usable tile-year of a tiny country
    votes: dict[tuple[str, int], list[str]] = {k: [] for k in shown}
    keys = {"urban": "1", "rural": "2", "uninhabited": "3"}

    for f in d.downloads.iterdir():
        f.unlink()
    open_fresh(d, page)
    d.find_element("tag name", "body").click()
    for i, key in enumerate(shown):
        assert f"{key[0]} ({key[1]})" in d.find_element("id", "tile-caption").text, i
        ActionChains(d).send_keys(keys[truth[key].kind]).perform()
        votes[key].append(truth[key].kind)
    ann = export(d, "ann", ".labels.csv")

    rural = sorted((t for t in truth.values() if t.kind == "rural"), key=lambda t: -t.level)
    misread = {(t.tile_id, t.year) for t in rural[:2]}
    open_fresh(d, page)
    for i, key in enumerate(shown):
        label = "skip" if i == len(shown) - 1 else truth[key].kind
        label = "urban" if key in misread else label
        d.find_element("css selector", f'#single button[data-label="{label}"]').click()
        if label != "skip":
            votes[key].append(label)
    bo = export(d, "bo", ".labels.csv")
    return ann, bo, votes


def expected_labels(votes: dict) -> pd.DataFrame:
    rows = [
        (t, y, *(v.count(k) / len(v) for k in wc.KINDS), len(v))
        for (t, y), v in sorted(votes.items())
    ]
    cols = ["tile_id", "year", *wc.KINDS, "n_annotators"]
    return pd.DataFrame(rows, columns=cols)


def rank_in_browser(d, page: Path, order: list[int]) -> tuple[Path, Path]:
    """Two people rank the clusters: "ann" by clicks (select a card, place it on a tier; one
    tier per cluster, most developed first), "bo" by keys (a card's focus, then its tier's digit)
    with the two least developed clusters tied."""
    from selenium.webdriver.common.keys import Keys

    def card(cid):
        return d.find_element("css selector", f'.card[data-cluster="{cid}"]')

    def tier(i):
        return d.find_element("css selector", f'.tier[data-tier="{i}"]')

    for f in d.downloads.iterdir():
        f.unlink()
    open_fresh(d, page)
    for i, cid in enumerate(order):
        if i:
            d.find_element("id", "add-tier").click()
        card(cid).click()
        tier(i).find_element("css selector", "button.place").click()
    ann = export(d, "ann", ".pog")

    open_fresh(d, page)
    for _ in order[2:]:
        d.find_element("id", "add-tier").click()
    for i, cid in enumerate(order):
        c = card(cid)
        d.execute_script("arguments[0].focus()", c)
        c.send_keys(Keys.ENTER)  # select
        c.send_keys(str(min(i, len(order) - 2) + 1))
    bo = export(d, "bo", ".pog")
    return ann, bo


def cluster_order(p: SimpleNamespace) -> list[int]:
    """The inhabited clusters from most to least developed, as a person looking at their tiles
    would see them: by the mean built-up level of their members."""
    members = query(
        p,
        f"SELECT m.tile_id, m.year, m.cluster_id FROM cluster_members m JOIN clusters c "
        f"USING (country, cluster_id) WHERE m.country = '{CODE}' "
        f"AND c.cluster_group <> 'uninhabited'",
    )
    members["level"] = [p.truth[(t, int(y))].level for t, y in zip(members.tile_id, members.year)]
    means = members.groupby("cluster_id")["level"].mean().sort_values(ascending=False)
    return [int(c) for c in means.index]


class Laps:
    """Wall time of each step of the walk (printed with ``-s``: the figures of the doc)."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.last))
        self.last = now

    def report(self) -> None:
        for name, seconds in self.laps:
            print(f"walkthrough step: {name}: {seconds:.1f} s")
        print(f"walkthrough total: {time.perf_counter() - self.t0:.1f} s")


def test_walkthrough_from_imagery_to_maps(browser, platform):
    p, d = platform, browser
    lap = Laps()

    # 1-2. `siscore run`: ingest and the labelling kit, then a stop at Stage 1 (no labels yet).
    with pytest.raises(RunFailed) as stopped:
        materialize_country(p.defs, CODE, wc.YEARS, instance=p.instance, log=lambda _: None)
    assert [line for line in stopped.value.lines if "pretrain_set" in line] == [
        f"{CODE} pretrain_set: country {CODE}: 'pretrain: generated' needs a synthetic source; "
        "label tiles with the labelling kit and set 'pretrain: kit', or point 'pretrain' at a "
        "folder with images/ and labels.csv"
    ], stopped.value.lines
    assets = [k for a in p.defs.assets for k in a.keys]
    p.done.update(k for k in assets if p.instance.get_latest_materialization_event(k))
    assert {AssetKey("patches"), AssetKey("label_kit")} <= p.done
    kit = p.data / CODE / LABEL_KIT_FILE
    assert kit.is_file()
    lap("ingest + label_kit")
    ann, bo, votes = label_in_browser(d, kit, p.truth)
    lap("labelling kit in Chromium (2 people)")

    # 3. The exports go where the label sensor looks; its run merges them.
    requests, cursor = tick(p, LABEL_SENSOR, None)  # baseline
    assert requests == []
    folder = p.data / CODE / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    for f in (ann, bo):
        shutil.copy(f, folder / f.name)
    requests, cursor = tick(p, LABEL_SENSOR, cursor)
    assert [r.partition_key for r in requests] == [CODE]
    run_request(p, LABEL_SENSOR, requests[0])
    merged = pd.read_csv(p.data / CODE / MERGED_FILE)
    pd.testing.assert_frame_equal(merged, expected_labels(votes), check_dtype=False)
    table = query(p, f"SELECT * FROM habitation_labels WHERE country = '{CODE}'")
    assert len(table) == len(merged)
    assert meta(p, "habitation_labels")["annotators"] == 2
    lap("label sensor + habitation_labels")

    # 4. Stage 1 from those labels (`pretrain: kit`: the merged file as it is, no copy): the
    # filter, the clusters, the annotation kit.
    configure(p, pretrain="kit")
    # `siscore run` again: Stage 1 and the annotation kit, then a stop: no POG folder yet.
    with pytest.raises(RunFailed) as stopped:
        materialize_country(p.defs, CODE, wc.YEARS, instance=p.instance, log=lambda _: None)
    assert stopped.value.lines == [
        f"{CODE} annotation_inputs: {CODE}: annotation folder not found: "
        f"{p.data / CODE / 'annotations'}"
    ]
    assets = [k for a in p.defs.assets for k in a.keys]
    p.done.update(k for k in assets if p.instance.get_latest_materialization_event(k))
    assert {AssetKey("clusters"), AssetKey("annotation_kit")} <= p.done
    lap("Stage 1 + annotation_kit")
    hab = meta(p, "habitation_model")
    assert hab["filter"] == "stats" and hab["heldout_filter_accuracy"] >= 0.75
    clusters = query(p, f"SELECT * FROM clusters WHERE country = '{CODE}' ORDER BY cluster_id")
    assert clusters["cluster_group"].tolist() == ["urban"] * 2 + ["rural"] * 2 + ["uninhabited"]
    habitation = query(p, f"SELECT * FROM habitation WHERE country = '{CODE}'")
    called = dict(zip(zip(habitation.tile_id, habitation.year), habitation.inhabited))
    right = [called[k] == (t.kind != "uninhabited") for k, t in p.truth.items()]
    assert np.mean(right) >= 0.9

    # 5. The annotation kit, ranked by two people; the POGs go where the annotation sensor looks.
    order = cluster_order(p)
    pog_kit = p.data / CODE / POG_KIT_FILE
    assert [c["id"] for c in kit_data(pog_kit)["clusters"]] == sorted(order)
    pog_ann, pog_bo = rank_in_browser(d, pog_kit, order)
    lap("POG kit in Chromium (2 people)")
    line = ">".join(map(str, order))
    assert pog_ann.read_text().strip() == line
    tied = "=".join(map(str, sorted(order[-2:])))
    assert pog_bo.read_text().strip() == ">".join([*map(str, order[:-2]), tied])
    requests, cursor = tick(p, SENSOR_NAME, None)  # baseline
    annotations = p.data / CODE / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    for f in (pog_ann, pog_bo):
        shutil.copy(f, annotations / f.name)
    requests, cursor = tick(p, SENSOR_NAME, cursor)
    assert sorted((r.job_name, r.partition_key) for r in requests) == [
        (ANNOTATOR_JOB, f"{CODE}|ann"),
        (ANNOTATOR_JOB, f"{CODE}|bo"),
    ]
    for r in requests:
        run_request(p, SENSOR_NAME, r)
    requests, cursor = tick(p, SENSOR_NAME, cursor)
    assert [(r.job_name, r.partition_key) for r in requests] == [(REFRESH_JOB, CODE)]
    run_request(p, SENSOR_NAME, requests[0])
    pogs = query(p, f"SELECT annotator FROM annotator_pogs WHERE country = '{CODE}'")
    assert sorted(pogs["annotator"]) == ["ann", "bo"]
    ensemble = query(p, f"SELECT * FROM ensemble_pog WHERE country = '{CODE}'")
    assert len(ensemble) == len(order)
    lap("annotation sensor + POG runs + ensemble")

    # 6. Everything else: scorer, scores, rasters, tables, the web map.
    run_step(p, None)
    lap("scorer, siscore_grid, rasters, tables, web map")
    grid = query(p, f"SELECT year, tile_id, score FROM siscore_grid WHERE country = '{CODE}'")
    assert grid.groupby("year").size().to_dict() == {y: wc.N_TILES for y in wc.YEARS}
    assert grid["score"].between(0, 1).all()
    kinds = grid.assign(kind=[p.truth[(t, int(y))].kind for t, y in zip(grid.tile_id, grid.year)])
    mean = kinds.groupby("kind")["score"].mean()
    assert mean["urban"] > mean["rural"] > mean["uninhabited"]
    assert len(query(p, f"SELECT * FROM validation_internal WHERE country = '{CODE}'")) > 0
    rasters = query(p, f"SELECT * FROM siscore_raster_files WHERE country = '{CODE}'")
    assert len(rasters) and all(Path(f).is_file() for f in rasters["path"])
    assert (p.data / CODE / "web" / "index.html").is_file()
    lap.report()
