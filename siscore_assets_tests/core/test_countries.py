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
        ({"countries": {"A": {"years": [2016], "source": {"kind": "stac"}}}}, "source.kind"),
        ({"countries": {"A": {"years": [2016], "source": {"kind": "synthetic"}, "models": {"epochz": 1}}}}, "epochz"),
        ({"default": "B", "countries": {"A": {"years": [2016], "source": {"kind": "synthetic"}}}}, "default country"),
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

    reg = parse_countries({"countries": {"ABC": {"years": [2016], "source": {"kind": "tile_folder"},
                                                 "proxies": "none"}}}, "inline")
    assert not reg.get("ABC").has_layer("proxies")
    assert reg.get("ABC").has_layer("districts")
