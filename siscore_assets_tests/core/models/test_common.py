"""The models' shared helpers: checkpoints written whole or not at all."""

import pytest


def test_a_checkpoint_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    """A retrain that dies mid-write (or a reader during it) never sees a half-written model."""
    import torch

    from siscore_assets.core.models import common

    path = common.save_checkpoint(tmp_path / "m.pt", "k", {"a": 1}, {"w": torch.ones(3)})
    real_save = torch.save

    def dies_half_way(obj, f):
        real_save({"kind": "partial"}, f)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        common.save_checkpoint(path, "k", {"a": 2}, {"w": torch.zeros(3)})
    config, state = common.load_checkpoint(path, "k")
    assert config == {"a": 1} and bool((state["w"] == 1).all())
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_the_same_model_gives_the_same_bytes(tmp_path):
    """torch names the archive inside a checkpoint after its file: written through a temporary
    name, two saves of one model would differ byte for byte."""
    import torch

    from siscore_assets.core.models import common

    state = {"w": torch.arange(4.0)}
    a = common.save_checkpoint(tmp_path / "a" / "m.pt", "k", {}, state).read_bytes()
    b = common.save_checkpoint(tmp_path / "b" / "m.pt", "k", {}, state).read_bytes()
    assert a == b


def test_a_staged_checkpoint_named_for_its_final_file_gives_its_bytes(tmp_path):
    """A checkpoint written to a staged temporary file (`StagedFiles`) with its final ``name``
    has the bytes of one written straight to that file (deepcluster.pt differed every run)."""
    import torch

    from siscore_assets.core.models import common

    state = {"w": torch.arange(4.0)}
    final = common.save_checkpoint(tmp_path / "a" / "m.pt", "k", {}, state).read_bytes()
    staged = tmp_path / "b" / ".m.pt.1234.staged"
    assert common.save_checkpoint(staged, "k", {}, state, name="m.pt").read_bytes() == final
