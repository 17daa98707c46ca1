"""benchmarks/whole_chain.py: the 4-year link farm points each year at that year's tiles, and the
country entry is PRK's with the farm as its tile folder, accepted by the countries loader."""

from __future__ import annotations

import os

import yaml
from PIL import Image

from benchmarks import whole_chain
from siscore_assets.core.countries import load_countries


def test_each_year_links_its_own_tiles_and_the_entry_loads(tmp_path):
    sample = tmp_path / "sample"
    for name in ("clusters", "pretrain", "annotations"):
        (sample / name).mkdir(parents=True)
    for year in whole_chain.YEARS:
        (sample / "tiles" / str(year)).mkdir(parents=True)
        for y, x in ((100, 200), (100, 201), (101, 200)):
            Image.new("RGB", (4, 4)).save(sample / "tiles" / str(year) / f"{y}_{x}.png")
    farm = tmp_path / "farm"
    whole_chain.build_link_farm(farm, sample, 7)
    for year in whole_chain.YEARS:
        links = sorted((farm / "tiles" / str(year)).iterdir())
        assert len(links) == 7  # 3 x 3 block from (x 200, y 100), filled row-major
        assert {p.name for p in links} >= {"100_200.png", "101_202.png", "102_200.png"}
        assert {os.readlink(p).split(os.sep)[-2] for p in links} == {str(year)}
    whole_chain.build_link_farm(farm, sample, 7)  # a second build reuses the farm
    entry = whole_chain.country_entry(farm)
    assert entry["source"]["root"] == str(farm) and "root_env" not in entry["source"]
    assert entry["models"]["recipe"] == "cpu" and entry["years"] == list(whole_chain.YEARS)
    path = tmp_path / "countries.yaml"
    path.write_text(yaml.safe_dump({"default": "SCW", "countries": {"SCW": entry}}))
    assert load_countries(path).get("SCW").source.root == str(farm)
