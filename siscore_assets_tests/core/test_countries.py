import pytest

from siscore_assets.core.countries import (
    CountriesFileError,
    CountryConfigError,
    ModelSettings,
    StacSource,
    SyntheticSource,
    TileFolderSource,
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
        "country A: source.kind must be one of synthetic, tile_folder, stac, score_file$",
    ),
    "years_not_a_list": (
        "countries:\n  A:\n    source: {kind: synthetic}\n    years: 2016\n",
        4,
        "years must be a non-empty list",
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
        "country A: models.scorer_steps must be an integer, got 'lots'$",
    ),
    "unknown_setting": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n"
        "    regression: {first_year: 2016,\n                 clusterr: province}\n",
        6,
        "country A: unknown regression setting\\(s\\) clusterr$",
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
    "models_out_of_range": (
        "countries:\n  PRK:\n    years: [2016]\n    source: {kind: synthetic}\n    models:\n"
        "      recipe: cpu\n      steps: -3\n",
        7,
        "^[^:]+:7: country PRK: models.steps must be >= 0, got -3$",
    ),
    "zoom_out_of_range": (
        "countries:\n  A:\n    years: [2016]\n    zoom: 23\n    source: {kind: synthetic}\n",
        4,
        "country A: zoom must be <= 22, got 23$",
    ),
    "unknown_country_key": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n    yeers: [1]\n",
        5,
        "country A: unknown setting\\(s\\) yeers$",
    ),
    "unknown_synthetic_setting": (
        "countries:\n  A:\n    years: [2016]\n    source:\n      kind: synthetic\n"
        "      nx: 12\n      nz: 3\n",
        7,
        "country A: unknown synthetic source setting\\(s\\) nz$",
    ),
    "wrong_type_in_tile_folder_source": (
        "countries:\n  A:\n    years: [2016]\n    source:\n      kind: tile_folder\n"
        "      root: data\n      tiles: [a, b]\n",
        7,
        "country A: source.tiles must be a string, got \\['a', 'b'\\]$",
    ),
    "wrong_type_of_a_year": (
        "countries:\n  A:\n    years:\n      - 2016\n      - twenty\n"
        "    source: {kind: synthetic}\n",
        5,
        "country A: years.1 must be an integer, got 'twenty'$",
    ),
    "old_key_out_of_range_under_a_recipe": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n    models:\n"
        "      recipe: cpu\n      scorer_steps: -1\n",
        7,
        "country A: models.scorer_steps must be >= 0, got -1$",
    ),
    # found by review: a recipe's and a rule's problems were reported at the `models:` line
    "unknown_recipe": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n    models:\n"
        "      seed: 0\n      recipe: cpus\n",
        7,
        "country A: models.recipe: unknown recipe 'cpus'; known: cpu, paper, small, smoke$",
    ),
    "k_range_the_wrong_way_round": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n    models:\n"
        "      recipe: cpu\n      seed: 0\n      k_range_urban: [12, 8]\n",
        8,
        "country A: models.k_range_urban must be \\[low, high\\] with 2 <= low <= high, "
        "got \\[12, 8\\]$",
    ),
    "old_and_new_name_both_given": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n    models:\n"
        "      steps: 4\n      scorer_steps: 3\n",
        7,
        "country A: models.scorer_steps and steps name the same setting: keep steps$",
    ),
    "rule_across_fields_at_its_first_key": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n    models:\n"
        "      seed: 0\n      colour_stats: true\n      normalize: per_image\n",
        7,
        "country A: models.colour_stats needs normalize: fixed",
    ),
    "rule_across_fields_at_the_key_the_file_has": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: tile_folder}\n    models:\n"
        "      recipe: cpu\n      pretraining: supervised\n",
        7,
        "country A: models.pretraining: from_pretrained needs pretraining: mean_teacher",
    ),
    "source_not_a_mapping": (
        "countries:\n  A:\n    years: [2016]\n    source: satellite\n",
        4,
        "country A: source.kind must be one of synthetic, tile_folder, stac, score_file$",
    ),
    # found by review: YAML kept the last of a key given twice, the lines pointed at the first
    "country_given_twice": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n"
        "  B:\n    years: [2016]\n    source: {kind: synthetic}\n"
        "  A:\n    years: [2019]\n    source: {kind: synthetic, seed: 9}\n",
        8,
        "key 'A' given twice \\(first at line 2\\)$",
    ),
    "setting_given_twice": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic}\n    years: [2020]\n",
        5,
        "key 'years' given twice \\(first at line 3\\)$",
    ),
    "flow_setting_given_twice": (
        "countries:\n  A:\n    years: [2016]\n    source: {kind: synthetic, seed: 1,\n"
        "             seed: 2}\n",
        5,
        "key 'seed' given twice \\(first at line 4\\)$",
    ),
    # found by review: a year listed twice was kept twice and broke the Dagster partitions
    "year_listed_twice": (
        "countries:\n  A:\n    years: [2016, 2017, 2016]\n    source: {kind: synthetic}\n",
        3,
        "country A: years.2: year 2016 listed twice$",
    ),
    "year_listed_twice_block_style": (
        "countries:\n  A:\n    years:\n      - 2016\n      - 2017\n      - 2016\n"
        "    source: {kind: synthetic}\n",
        6,
        "country A: years.2: year 2016 listed twice$",
    ),
}


def test_merge_keys_may_override_what_they_merge(tmp_path):
    """A key beside a YAML merge (``<<: *base``) overrides the merged one: not a duplicate."""
    path = tmp_path / "countries.yaml"
    path.write_text(
        "countries:\n  A: &base\n    years: [2016]\n    source: {kind: synthetic}\n"
        "  B:\n    <<: *base\n    years: [2017]\n"
    )
    assert load_countries(path).get("B").years == (2017,)


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


def _one(entry: dict, code: str = "A"):
    return parse_countries({"countries": {code: entry}}, "inline").get(code)


def test_a_recipe_preset_under_the_countrys_own_keys_and_old_key_names():
    syn = {"years": [2016], "source": {"kind": "synthetic"}}
    m = _one({**syn, "models": {"recipe": "cpu", "steps": 5}}).models
    assert m.recipe == "cpu" and m.steps == 5 and m.lr == 1e-4  # cpu's lr, the country's steps
    assert _one({**syn, "models": {"scorer_steps": 7}}).models.steps == 7
    assert _one({**syn, "models": {"recipe": "cpu", "scorer_steps": 7}}).models.steps == 7
    assert _one({**syn, "models": {"recipe": ""}}).models.recipe == "small"
    assert _one(syn).models == ModelSettings()


def test_models_is_the_model_settings_and_a_copy_is_validated():
    country = _one({"years": [2016], "source": {"kind": "synthetic"}, "models": {"steps": 9}})
    assert isinstance(country.models, ModelSettings)
    copy = country.model_copy(update={"models": country.models.with_overrides(input_px=48)})
    assert (copy.models.input_px, copy.models.steps, country.models.input_px) == (48, 9, 32)
    assert country.models.with_overrides(scorer_steps=3).steps == 3  # an old name overrides too
    with pytest.raises(ValueError, match="input_px"):
        country.models.with_overrides(input_px=2)


def test_the_packaged_sources_are_typed():
    reg = load_countries()
    syn, prk = reg.get("SYN").source, reg.get("PRK").source
    assert isinstance(syn, SyntheticSource) and (syn.nx, syn.granule_tiles) == (40, 20)
    assert isinstance(prk, TileFolderSource) and prk.root_env == "SISCORE_PRK_ROOT"
    assert prk.tiles == "tiles" and prk.max_cloud_fraction == 0.15
    assert reg.get("PRK").models.holdout_per_cluster == 10


def test_source_kinds_and_their_shared_settings():
    stac = _one(
        {
            "years": [2022],
            "bbox": [126, 38, 126.1, 38.1],
            "source": {"kind": "stac", "api": "https://x/", "store_px": 64, "block_zoom": 9},
        }
    ).source
    assert isinstance(stac, StacSource) and stac.bbox == (126.0, 38.0, 126.1, 38.1)
    assert (stac.api, stac.store_px, stac.block_zoom) == ("https://x", 64, 9)
    native = _one({"years": [2016], "source": {"kind": "tile_folder", "store_px": "native"}})
    assert native.source.store_px is None and native.source_kind == "tile_folder"
    with pytest.raises(CountriesFileError, match="source.store_px must be >= 1, got 0"):
        _one({"years": [2016], "source": {"kind": "tile_folder", "store_px": 0}})
    with pytest.raises(CountriesFileError, match="source.max_cloud_fraction must be <= 1"):
        _one({"years": [2016], "source": {"kind": "tile_folder", "max_cloud_fraction": 15}})


def test_the_country_is_frozen():
    country = _one({"years": [2016], "source": {"kind": "synthetic"}})
    with pytest.raises(ValueError, match="frozen"):
        country.zoom = 3  # type: ignore[misc]


def test_a_new_entry_takes_the_files_indent():
    """`siscore country add` writes its entry with the indent of the file's own entries, also
    when the `countries:` line carries a comment (found by review)."""
    from siscore_assets.core.country_entry import entry_indent, reindent

    assert entry_indent("default: X\ncountries:  # mine\n    # note\n    SYN:\n") == 4
    assert entry_indent("countries:\n  A:\n") == 2 and entry_indent("default: X\n") == 2
    assert reindent("  LAO:\n    name: x\n    source:\n      kind: stac\n", 4) == (
        "    LAO:\n        name: x\n        source:\n            kind: stac\n"
    )
