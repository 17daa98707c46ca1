"""`clusters` computes and stages every output before it replaces any: a failure while
preparing them (here: encoding the contact sheet) leaves the earlier fit's tables and files
(members, summary, `clusters.pkl`, contact sheet) exactly as they were."""

from __future__ import annotations

import textwrap

import pytest
from dagster import DagsterInstance, materialize

from siscore_assets.defs.clusters import assets as cluster_assets
from siscore_assets.defs.common.partitions import country_year_key
from siscore_assets_tests.conftest import select
from siscore_assets_tests.fixtures.definitions import definitions_for

COUNTRIES = """
default: CLW
countries:
  CLW:
    years: [2016]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 12, ny: 12, tile_px: 32,
             granule_tiles: 12, n_annotators: 3, pretrain_images: 60}
    models: {seed: 0, input_px: 32, habitation_epochs: 1, habitation_input_px: 32,
             k_range_urban: [2, 2], k_range_rural: [2, 2]}
"""


def _run(defs, names, key, raise_on_error=True):
    return materialize(
        list(defs.assets),
        selection=select(*names),
        partition_key=key,
        resources=dict(defs.resources),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


def _outputs(defs, data):
    warehouse = defs.resources["warehouse"]
    files = [
        data / "CLW" / "models" / "clusters.pkl",
        data / "CLW" / "clusters" / "contact_sheet.png",
    ]
    return (
        warehouse.read("cluster_members", {"country": "CLW"}),
        warehouse.read("clusters", {"country": "CLW"}),
        {f.name: f.read_bytes() for f in files if f.exists()},
    )


@pytest.fixture
def fitted(tmp_path):
    countries = tmp_path / "countries.yaml"
    countries.write_text(textwrap.dedent(COUNTRIES))
    defs, _ = definitions_for(countries, tmp_path)
    key = country_year_key("CLW", 2016)
    _run(defs, ["granules", "patches"], key)
    _run(defs, ["pretrain_set", "habitation_model"], "CLW")
    _run(defs, ["habitation"], key)
    return defs, tmp_path / "data"


def test_a_failed_fit_leaves_the_earlier_one(fitted, monkeypatch):
    defs, data = fitted
    # the first fit fails while preparing its outputs: nothing of it is written
    real = cluster_assets.png_bytes

    def failing(*args, **kwargs):
        raise RuntimeError("encoder broke")

    monkeypatch.setattr(cluster_assets, "png_bytes", failing)
    assert not _run(defs, ["clusters"], "CLW", raise_on_error=False).success
    members, summary, files = _outputs(defs, data)
    assert members.empty and summary.empty and files == {}

    monkeypatch.setattr(cluster_assets, "png_bytes", real)
    _run(defs, ["clusters"], "CLW")
    before = _outputs(defs, data)
    assert len(before[0]) == 144 and len(before[1]) and len(before[2]) == 2

    monkeypatch.setattr(cluster_assets, "png_bytes", failing)
    assert not _run(defs, ["clusters"], "CLW", raise_on_error=False).success
    after = _outputs(defs, data)
    assert after[0].equals(before[0]) and after[1].equals(before[1]) and after[2] == before[2]
    assert list(data.rglob(".*.staged")) == []


@pytest.mark.parametrize("features", ["network", "stats"])
def test_a_failed_habitation_model_leaves_the_earlier_model_files(tmp_path, monkeypatch, features):
    """`habitation_model` reports everything before it replaces its files (the network and, with
    ``stage1_features: stats``, the descriptor filter): a failure while preparing the report
    (review: `pretrain_epochs: 0`'s empty history) leaves the files of the last good run."""
    countries = tmp_path / "countries.yaml"
    text = textwrap.dedent(COUNTRIES).replace("k_range_rural: [2, 2]}", "k_range_rural: [2, 2],")
    countries.write_text(text.rstrip() + f"\n             stage1_features: {features}}}\n")
    defs, _ = definitions_for(countries, tmp_path)
    models = tmp_path / "data" / "CLW" / "models"

    def files():
        return {p.name: p.read_bytes() for p in models.iterdir()} if models.exists() else {}

    def failing(*args, **kwargs):
        raise RuntimeError("report broke")

    _run(defs, ["pretrain_set"], "CLW")
    real = cluster_assets.line_plot_md
    monkeypatch.setattr(cluster_assets, "line_plot_md", failing)
    assert not _run(defs, ["habitation_model"], "CLW", raise_on_error=False).success
    assert files() == {}
    monkeypatch.setattr(cluster_assets, "line_plot_md", real)
    _run(defs, ["habitation_model"], "CLW")
    before = files()
    wanted = {"habitation.pt"} | ({"habitation_stats.pkl"} if features == "stats" else set())
    assert set(before) == wanted
    (models / "habitation.pt").write_bytes(b"the last good run's network")
    monkeypatch.setattr(cluster_assets, "line_plot_md", failing)
    assert not _run(defs, ["habitation_model"], "CLW", raise_on_error=False).success
    assert files() == {**before, "habitation.pt": b"the last good run's network"}
