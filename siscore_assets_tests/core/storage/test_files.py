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
