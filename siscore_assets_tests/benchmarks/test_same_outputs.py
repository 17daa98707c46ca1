"""benchmarks.same_outputs: identical runs pass whatever their row order and data root; a changed
score or a missing table does not."""

import pandas as pd

from benchmarks import same_outputs


def _run(root, score=0.5, order=(0, 1, 2)):
    (root / "siscore_grid").mkdir(parents=True)
    (root / "mosaic_files").mkdir()
    grid = pd.DataFrame({"tile_id": ["a", "b", "c"], "year": 2016, "score": [0.1, 0.2, score]})
    grid.iloc[list(order)].to_parquet(root / "siscore_grid" / "year=2016.parquet", index=False)
    files = pd.DataFrame({"year": [2016], "path": [f"{root}/m.tif"], "write_ms": [12.5]})
    files.to_parquet(root / "mosaic_files" / "all.parquet", index=False)
    return root


def test_same_tables_in_another_order_and_root_are_identical(tmp_path, capsys):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b", order=(2, 0, 1))
    assert same_outputs.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("identical") and "'run_specific_differ': ['path']" in out


def test_a_changed_score_or_a_missing_table_is_different(tmp_path, capsys):
    a = _run(tmp_path / "a")
    assert same_outputs.main([str(a), str(_run(tmp_path / "b", score=0.5 + 1e-9))]) == 1
    out = capsys.readouterr().out
    assert (
        out.strip().endswith("DIFFERENT")
        and "'max_float_difference': 0.0" not in out.split("siscore_grid")[1]
    )
    c = _run(tmp_path / "c")
    (c / "mosaic_files" / "all.parquet").unlink()
    (c / "mosaic_files").rmdir()
    assert same_outputs.main([str(a), str(c)]) == 1
    assert "mosaic_files: not in" in capsys.readouterr().out


def test_a_missing_partition_is_different(tmp_path, capsys):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    (b / "siscore_grid" / "year=2016.parquet").rename(b / "siscore_grid" / "year=2017.parquet")
    assert same_outputs.main([str(a), str(b)]) == 1
    assert "partition files differ" in capsys.readouterr().out
