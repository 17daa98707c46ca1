"""The partitionings told apart from the loaded assets alone, the configured years read back
from them, and the keys a tick finds that the loaded definitions lack."""

from __future__ import annotations

import textwrap

from dagster import asset

from siscore_assets.core.countries import load_countries
from siscore_assets.definitions import build_definitions
from siscore_assets.defs.common.partitions import (
    ANNOTATOR,
    COUNTRY,
    RELOAD,
    YEARLY,
    keep_unloaded,
    loaded_years,
    make_partitions,
    partition_kind,
    reload_note,
    split_loaded,
)

COUNTRIES = """
default: SYA
countries:
  SYA:
    years: [2017, 2016]
    source: {kind: synthetic, seed: 7, x0: 13903, y0: 6163, nx: 6, ny: 6, tile_px: 32,
             granule_tiles: 6}
  SYB:
    years: [2018]
    source: {kind: synthetic, seed: 11, x0: 13920, y0: 6170, nx: 6, ny: 6, tile_px: 32,
             granule_tiles: 6}
"""


def _registry(tmp_path):
    path = tmp_path / "countries.yaml"
    path.write_text(textwrap.dedent(COUNTRIES))
    return load_countries(path)


def test_the_kind_of_partitioning_of_an_asset(tmp_path):
    p = make_partitions(_registry(tmp_path))

    @asset(partitions_def=p.country_year)
    def yearly(): ...

    @asset(partitions_def=p.country)
    def country(): ...

    @asset(partitions_def=p.country_annotator)
    def annotator(): ...

    @asset
    def unpartitioned(): ...

    kinds = [partition_kind(a) for a in (yearly, country, annotator, unpartitioned)]
    assert kinds == [YEARLY, COUNTRY, ANNOTATOR, COUNTRY]


def test_the_loaded_years_are_the_years_the_partitions_were_made_from(tmp_path):
    registry = _registry(tmp_path)
    defs = build_definitions(
        registry,
        data_root=str(tmp_path / "data"),
        countries_file=registry.path,
        warehouse_path=str(tmp_path / "w.duckdb"),
    )
    assert loaded_years(defs.assets) == make_partitions(registry).years_of
    assert loaded_years(defs.assets) == {"SYA": (2016, 2017), "SYB": (2018,)}
    kinds = {partition_kind(a) for a in defs.assets}
    assert kinds == {YEARLY, COUNTRY, ANNOTATOR}
    assert loaded_years([a for a in defs.assets if partition_kind(a) != YEARLY]) == {}


def test_keys_the_loaded_definitions_lack_are_left_for_a_reload():
    have, lack = split_loaded(
        iter(["A|2016", "NEW|2016", "A|2017", "NEW|2017"]), {"A|2016", "A|2017"}
    )
    assert (have, lack) == (["A|2016", "A|2017"], ["NEW|2016", "NEW|2017"])
    # a key the definitions lack keeps its earlier fingerprint: after the reload it is still new
    recorded = keep_unloaded({"A": "a2", "NEW": "n2", "B": None}, {"A": "a1", "NEW": "n1"}, ["NEW"])
    assert recorded == {"A": "a2", "NEW": "n1", "B": None}
    assert keep_unloaded({"NEW": "n2"}, {}, ["NEW"]) == {"NEW": None}
    note = reload_note("imagery", ["NEW|2016", "NEW|2017"], "not requested")
    assert note == f"imagery of NEW|2016, NEW|2017 not requested: {RELOAD}"
    assert "reload the code location" in note
    assert reload_note("imagery", [], "not requested") == ""
