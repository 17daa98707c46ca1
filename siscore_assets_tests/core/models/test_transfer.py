"""``models: start_from``: which settings must match, what is refused (one line naming both
countries), what a start reads and records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siscore_assets.core.model_settings import ModelSettings, recipe_settings, start_from_problem
from siscore_assets.core.models import habitation as habitation_lib
from siscore_assets.core.models import scorer as scorer_lib
from siscore_assets.core.models import transfer


def trained_source(folder, m: ModelSettings, seed: int = 0) -> None:
    """A source country's ``models/`` folder as its own Stage 1 and scorer would write it."""
    torch.manual_seed(seed)
    cfg = habitation_lib.HabitationConfig(**transfer.expected_habitation(m))
    habitation_lib.save_habitation(habitation_lib.HabitationModel(cfg), folder / "habitation.pt")
    members = []
    for s in m.scorer_seeds:
        net = scorer_lib.ScorerModel(scorer_lib.ScorerConfig.of(m))
        scorer_lib.save_scorer(net, folder / transfer.member_file(s))
        members.append(net)
    scorer_lib.save_scorer(scorer_lib.ensemble(members), folder / "scorer.pt")


def test_settings_default_to_no_start():
    m = ModelSettings()
    assert m.start_from == "" and m.start_use == "init"
    assert transfer.source_files(m, m) == []
    assert not transfer.reuses_scorer(m)


def test_start_from_must_be_a_country_code():
    with pytest.raises(ValueError, match="start_from"):
        ModelSettings(start_from="prk; rm")
    with pytest.raises(ValueError, match="start_use"):
        ModelSettings(start_from="PRK", start_use="copy")


def test_small_and_cpu_recipes_are_refused_naming_both_countries_and_each_difference():
    syn = ModelSettings(start_from="PRK", start_use="init")
    problem = start_from_problem("SYN", syn, "PRK", recipe_settings("cpu"))
    assert problem.startswith("country SYN: cannot start_from PRK (init)")
    for what in ("pretraining 'supervised' vs 'mean_teacher'", "input_px 32 vs 64",
                 "colour_stats False vs True", "texture_px 0 vs 256"):  # fmt: skip
        assert what in problem
    assert "\n" not in problem


def test_habitation_reuse_only_compares_stage1_settings():
    target = ModelSettings(input_px=48, start_from="SRC", start_use="habitation")
    assert start_from_problem("T", target, "SRC", ModelSettings()) is None
    assert "input_px" in start_from_problem(
        "T", target.with_overrides(start_use="init"), "SRC", ModelSettings()
    )


def test_as_is_needs_the_same_seeds_and_a_country_cannot_start_from_itself():
    target = recipe_settings("cpu", start_from="SRC", start_use="as_is", seeds=(0,))
    assert "seeds (0,) vs (0, 1, 2)" in start_from_problem(
        "T", target, "SRC", recipe_settings("cpu")
    )
    assert "itself" in start_from_problem("T", target, "T", target)


def test_untrained_source_is_refused_naming_the_missing_file(tmp_path):
    m = ModelSettings(start_from="SRC", start_use="as_is")
    with pytest.raises(transfer.StartFromError) as err:
        transfer.check_source("T", m, "SRC", ModelSettings(), tmp_path)
    line = str(err.value)
    assert "start_from SRC needs SRC's trained habitation.pt" in line
    assert str(tmp_path / "habitation.pt") in line and "run SRC first" in line


def test_a_checkpoint_written_for_another_input_is_refused(tmp_path):
    source = ModelSettings()
    trained_source(tmp_path, source.with_overrides(input_px=16))  # settings say 32 px
    m = ModelSettings(start_from="SRC", start_use="init")
    transfer.check_source("T", m.with_overrides(start_use="habitation"), "SRC", source, tmp_path)
    with pytest.raises(transfer.StartFromError, match=r"scorer\.pt: input_px 32 vs 16"):
        transfer.check_source("T", m, "SRC", source, tmp_path)


def test_init_hands_each_seed_the_source_members_trunk(tmp_path):
    source = ModelSettings(seeds=(0, 1))
    trained_source(tmp_path, source)
    m = ModelSettings(start_from="SRC", start_use="init")
    transfer.check_source("T", m, "SRC", source, tmp_path)
    start = transfer.scorer_start(source, tmp_path)
    assert [p.name for p in start.members] == ["scorer_seed0.pt", "scorer_seed1.pt"]
    for i in (0, 1, 2):  # cycled over the members
        member = scorer_lib.load_scorer(start.members[i % 2])
        net = scorer_lib.from_pretrained(start.trunk(i), scorer_lib.ScorerConfig.of(m))
        a, b = member.net.state_dict(), net.net.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("fc."))
    tm = transfer.init_settings(m)
    assert tm.from_pretrained and tm.input_px == m.input_px and tm.start_from == "SRC"


def test_as_is_copies_the_scorer_and_records_each_file(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    source = ModelSettings()
    trained_source(src, source)
    m = ModelSettings(start_from="SRC", start_use="as_is")
    records = transfer.reuse_scorer(m, source, src, dst)
    assert sorted(records) == ["scorer.pt", "scorer_seed0.pt"]
    assert (dst / "scorer.pt").read_bytes() == (src / "scorer.pt").read_bytes()
    rec = records["scorer.pt"]
    assert rec["path"] == str(src / "scorer.pt") and len(rec["sha256"]) == 64
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        scorer_lib.score_images(scorer_lib.load_scorer(dst / "scorer.pt"), images),
        scorer_lib.score_images(scorer_lib.load_scorer(src / "scorer.pt"), images),
    )
