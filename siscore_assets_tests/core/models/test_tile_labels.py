"""The labelling kit's merged soft labels as a habitation label source: bad rows are one
``FILE:LINE: problem`` each, and every label must name a usable tile-year."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from siscore_assets.core.models import tile_labels

HEADER = "tile_id,year,urban,rural,uninhabited,n_annotators\n"


def _write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "labels.csv"
    path.write_text(header + body)
    return path


def test_reads_normalises_and_locates_rows(tmp_path):
    path = _write(tmp_path, "14/1/2,2016,2,1,1,4\n14/1/3,2017,0,0,3,3\n")
    assert tile_labels.is_tile_labels(path)
    labels = tile_labels.read_tile_labels(path)
    np.testing.assert_allclose(
        labels[["urban", "rural", "uninhabited"]], [[0.5, 0.25, 0.25], [0, 0, 1]]
    )
    index = pd.DataFrame(
        {
            "year": [2016, 2017, 2017],
            "tile_id": ["14/1/2", "14/1/2", "14/1/3"],
            "image_row": [0, 0, 1],
        }
    )
    located = tile_labels.locate(labels, index, path)
    assert located["image_row"].tolist() == [0, 1]


def test_paper_style_labels_are_not_tile_labels(tmp_path):
    assert not tile_labels.is_tile_labels(
        _write(tmp_path, "1,0,0.25,0.75\n", "image_id,urban,rural,uninhabited\n")
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "14/1/2,2016,1,0,0,1\n14/1/2,2016,0,1,0,1\n",
            r"labels.csv:3: 14/1/2 2016 already labelled on line 2",
        ),
        ("14-1-2,2016,1,0,0,1\n", r"labels.csv:2: tile_id '14-1-2' is not z/x/y"),
        ("14/1/2,2016,-1,0,0,1\n", r"labels.csv:2: shares must be non-negative"),
        ("14/1/2,20x6,1,0,0,1\n", r"labels.csv:2: bad year or share"),
        ("", r"labels.csv: no labelled tiles"),
    ],
)
def test_bad_rows_name_their_line(tmp_path, body, problem):
    with pytest.raises(ValueError, match=problem):
        tile_labels.read_tile_labels(_write(tmp_path, body))


def test_missing_column_and_unknown_tile(tmp_path):
    with pytest.raises(ValueError, match=r"labels.csv:1: missing column\(s\) uninhabited"):
        tile_labels.read_tile_labels(_write(tmp_path, "", "tile_id,year,urban,rural\n"))
    path = _write(tmp_path, "14/1/2,2016,1,0,0,1\n14/9/9,2016,1,0,0,1\n")
    index = pd.DataFrame({"year": [2016], "tile_id": ["14/1/2"], "image_row": [0]})
    with pytest.raises(ValueError, match=r"labels.csv:3: 14/9/9 2016 is not a usable tile-year"):
        tile_labels.locate(tile_labels.read_tile_labels(path), index, path)
