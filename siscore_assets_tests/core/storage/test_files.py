import pytest

from siscore_assets.core.storage.files import atomic_path


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("v1")
    assert target.read_text() == "v1"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "v1"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_two_writers_of_one_path_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "a.pog"
    with atomic_path(target) as one, atomic_path(target) as two:
        assert one != two and one.suffix == two.suffix == ".pog"
        assert one.name.startswith(".") and two.name.startswith(".")
        one.write_text("1")
        two.write_text("2")
    assert target.read_text() == "1"  # the later rename wins: a whole file either way
