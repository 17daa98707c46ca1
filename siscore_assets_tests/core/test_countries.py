import pytest

from siscore_assets.core.countries import (
    CountryConfigError,
    UnknownPartitionError,
    load_countries,
    parse_countries,
)


def test_packaged_countries_have_the_synthetic_default():
    reg = load_countries()
    assert reg.default == "SYN"
    syn = reg.get("SYN")
    assert syn.is_synthetic and syn.years == (2016, 2017, 2018, 2019)


def test_unknown_country_and_year_name_what_is_configured(tiny_countries):
    reg = load_countries(tiny_countries)
    with pytest.raises(UnknownPartitionError, match="unknown country 'XXX'.*NOANN, SYN, TWO"):
        reg.get("XXX")
    with pytest.raises(UnknownPartitionError, match="country TWO has no year 2016 .*2017"):
        reg.get("TWO").check_year(2016)
    assert reg.all_years == [2016, 2017]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "non-empty 'countries'"),
        ({"countries": {"syn": {"years": [1], "source": {"kind": "synthetic"}}}}, "upper-case"),
        ({"countries": {"A": {"years": [], "source": {"kind": "synthetic"}}}}, "years"),
        ({"countries": {"A": {"years": [2016], "source": {"kind": "ftp"}}}}, "source.kind"),
        (
            {
                "countries": {
                    "A": {"years": [2016], "source": {"kind": "synthetic"}, "models": {"epochz": 1}}
                }
            },
            "epochz",
        ),
        (
            {
                "default": "B",
                "countries": {"A": {"years": [2016], "source": {"kind": "synthetic"}}},
            },
            "default country",
        ),
    ],
)
def test_bad_countries_files_are_clear(data, message):
    with pytest.raises(CountryConfigError, match=message):
        parse_countries(data, "countries.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(CountryConfigError, match="not found"):
        load_countries(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("countries: [unclosed\n")
    with pytest.raises(CountryConfigError, match="not valid YAML"):
        load_countries(bad)


def test_layer_set_to_none_is_not_configured():
    from siscore_assets.core.countries import parse_countries

    reg = parse_countries(
        {
            "countries": {
                "ABC": {"years": [2016], "source": {"kind": "tile_folder"}, "proxies": "none"}
            }
        },
        "inline",
    )
    assert not reg.get("ABC").has_layer("proxies")
    assert not reg.get("ABC").has_layer("districts")  # left out: none (only synthetic generates)


BAD_FILES = {
    "yaml_syntax": (
        "countries:\n  A:\n    years: [2016\n    source: {kind: synthetic}\n",
        4,
        "not valid YAML",
    ),
    "unknown_source_kind": (
        "countries:\n  A:\n    years: [2016]\n    source:\n      kind: satellite\n",
        5,
        "source.kind must be one of",
    ),
    "years_not_a_list": (
        "countries:\n  A:\n    source: {kind: synthetic}\n    years: 2016\n",
        4,
        "'years' must be a non-empty list",
    ),
    "missing_source": (
        "default: A\ncountries:\n  A:\n    years: [2016]\n",
        3,
        "missing required key 'source'",
    ),
    "wrong_setting_type": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n    models:\n"
        "      seed: 0\n      scorer_steps: lots\n",
        7,
        "scorer_steps must be an integer",
    ),
    "unknown_setting": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n"
        "    regression: {first_year: 2016,\n                 clusterr: province}\n",
        6,
        "clusterr",
    ),
    "proxies_single_path": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n"
        "    proxies: nl.tif\n",
        5,
        "proxies must be a mapping",
    ),
    "covariates_bad_entry": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n"
        "    covariates:\n      port: ports.shp\n      mine: {path: mines.shp}\n",
        7,
        "covariates.mine must be",
    ),
    "stac_unknown_setting": (
        "countries:\n  A:\n    years: [2016]\n    source:\n      kind: stac\n"
        "      api: https://example.test\n      bbox: [126, 38, 126.1, 38.1]\n"
        "      colour: red\n",
        8,
        "unknown stac source setting.*colour",
    ),
    "stac_flow_style_season": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: stac, api: https://x,\n"
        "      bbox: [126, 38, 126.1, 38.1],\n      season: [09-01, 08-32]}\n",
        6,
        "source.season must be",
    ),
    "stac_country_bbox": (
        "countries:\n  A:\n    years: [2016]\n    bbox: [126, 38, 125, 39]\n"
        "    source: {kind: stac, api: https://x}\n",
        4,
        "bbox must be",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_countries_file_is_one_line_with_file_and_line(tmp_path, case):
    from siscore_assets.core.countries import CountriesFileError

    text, line, problem = BAD_FILES[case]
    path = tmp_path / "countries.yaml"
    path.write_text(text)
    with pytest.raises(CountriesFileError, match=problem) as info:
        load_countries(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message
    assert info.value.line == line and info.value.path == str(path)


def test_key_lines_point_at_the_nearest_key_the_file_has():
    from siscore_assets.core.countries import KeyLines

    lines = KeyLines.of_yaml("a:\n  b:\n    - 1\n    - {c: 2}\n", "f.yaml")
    assert lines.line(("a", "b", 1, "c")) == 4 and lines.line(("a", "b", 0)) == 3
    assert lines.line(("a", "nope")) == 1 and lines.line(("zzz",)) is None
    assert str(lines.error(("a", "b"), "bad")) == "f.yaml:2: bad"
    assert str(KeyLines("g.yaml").error(("a",), "bad")) == "g.yaml: bad"


def test_layers_left_out_are_none_except_for_synthetic_countries():
    reg = parse_countries(
        {
            "countries": {
                "TF": {"years": [2016], "source": {"kind": "tile_folder"}},
                "SY": {"years": [2016], "source": {"kind": "synthetic"}},
                "MAP": {
                    "years": [2016],
                    "source": {"kind": "tile_folder"},
                    "districts": {"file": "d.shp", "id": "FID", "province": "Level1"},
                    "proxies": {"nightlight": "nl.tif"},
                    "covariates": {"port": "p.shp", "mine": {"file": "m.shp", "type": "Type"}},
                },
            }
        },
        "inline",
    )
    tf, sy, mapped = reg.get("TF"), reg.get("SY"), reg.get("MAP")
    assert not any(tf.has_layer(layer) for layer in ("districts", "proxies", "covariates"))
    assert (sy.districts, sy.proxies, sy.covariates) == ("generated",) * 3
    assert mapped.layer_options("districts") == {"id": "FID", "province": "Level1"}
    assert mapped.proxies == {"nightlight": "nl.tif"}
    assert mapped.covariates["mine"] == {"file": "m.shp", "type": "Type"}


def test_a_good_stac_block_loads_and_reads_as_the_ingest_reads_it():
    from siscore_assets.core.imagery.stac.config import parse_stac_source

    entry = {
        "years": [2022],
        "bbox": [126, 38, 126.1, 38.1],
        "source": {"kind": "stac", "api": "https://example.test/v1/", "season": ["06-01", "08-31"]},
    }
    country = parse_countries({"countries": {"STC": entry}}, "inline").get("STC")
    cfg = parse_stac_source(country.source, "inline: country STC", bbox=country.bbox)
    assert cfg.api == "https://example.test/v1" and cfg.bbox == (
        126.0,
        38.0,
        126.1,
        38.1,
    )  # the country's bbox
    assert cfg.season == ("06-01", "08-31") and cfg.threads == 4 and isinstance(cfg.threads, int)
