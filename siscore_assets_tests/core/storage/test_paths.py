"""Nothing built from configuration or a partition key lands outside the data root: each kind
of name is tried with ``../``, an absolute path and a separator."""

import json

import pandas as pd
import pytest

from siscore_assets.core.analysis import imported
from siscore_assets.core.countries import CountryConfigError, parse_countries
from siscore_assets.core.ranking import annotators
from siscore_assets.core.storage import warehouse
from siscore_assets.core.storage.paths import UnsafePathError, inside, safe_join, safe_name
from siscore_assets.defs.common.resources import SiscoreSettings

BAD = ["../x", "..", "/etc", "/tmp/x", "a/b", "a\\b", ".hidden", "", "a\x00b"]


@pytest.mark.parametrize("bad", BAD)
def test_safe_name_refuses_what_leaves_the_folder(bad):
    with pytest.raises(UnsafePathError):
        safe_name(bad)


def test_safe_join_and_inside(tmp_path):
    assert (
        safe_join(tmp_path, "SYN", "patches", "2016.npy")
        == tmp_path / "SYN" / "patches" / "2016.npy"
    )
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsafePathError):
        inside(tmp_path, tmp_path / "link" / "etc")
    with pytest.raises(UnsafePathError):
        inside(tmp_path, tmp_path / ".." / "x")


@pytest.mark.parametrize("code", ["../X", "/ETC", "A/B", ".."])
def test_country_codes(code, tmp_path):
    entry = {"years": [2016], "source": {"kind": "synthetic"}}
    with pytest.raises(CountryConfigError, match="country codes"):
        parse_countries({"countries": {code: entry}}, "countries.yaml")
    with pytest.raises(UnsafePathError):
        SiscoreSettings(data_root=str(tmp_path)).country_dir(code)


@pytest.mark.parametrize("bad", BAD[:5])
def test_import_names_and_folders(bad, tmp_path):
    with pytest.raises(ValueError):
        imported.check_name(bad, "scores")
    with pytest.raises(UnsafePathError):
        imported.imports_dir(tmp_path, bad, "scores")
    with pytest.raises(UnsafePathError):
        imported.imports_dir(tmp_path, "SYN", bad)
    spec = imported.ImportSpec(
        name="ok", kind="scores", format="csv", file=bad + ".csv", original="x.csv"
    )
    with pytest.raises(UnsafePathError):
        imported.store(tmp_path / "none.csv", spec, tmp_path / "imports")


@pytest.mark.parametrize("bad", BAD[:5])
def test_annotator_names(bad, tmp_path):
    folder = tmp_path / "annotations"
    with pytest.raises(UnsafePathError):
        annotators.write_simulated(folder, {bad: "1>0"})
    folder.mkdir(exist_ok=True)
    (folder / annotators.SIMULATED_MANIFEST).write_text(json.dumps([bad]))  # a tampered manifest
    with pytest.raises(UnsafePathError):
        annotators.write_simulated(folder, {"eco1": "1>0"})
    assert not list(tmp_path.parent.glob("*.pog"))


@pytest.mark.parametrize("bad", BAD[:5])
def test_partition_keys_years_and_tables(bad, tmp_path):
    db = tmp_path / "data" / "warehouse.duckdb"
    with pytest.raises(UnsafePathError):
        warehouse.write(
            db,
            "t",
            pd.DataFrame({"country": ["SYN"], "year": [bad]}),
            {"country": "SYN", "year": bad},
        )
    with pytest.raises((UnsafePathError, ValueError)):
        warehouse.write(db, bad, pd.DataFrame({"country": ["SYN"]}), {"country": "SYN"})
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts]
    assert not list(tmp_path.rglob("*.parquet"))
