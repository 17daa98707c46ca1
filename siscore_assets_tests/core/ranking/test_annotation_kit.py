"""The annotation kit page without a browser: self-contained, deterministic, robust to bad images;
and the annotation-folder fingerprint the sensor compares."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siscore_assets.core.ranking.annotation_kit import (
    annotation_files,
    folder_clusters,
    folder_fingerprint,
    is_valid_annotator_name,
    render_annotation_kit,
)
from siscore_assets_tests.conftest import SHARED_NK


def _tiles(n: int, value: int, px: int = 24) -> list[np.ndarray]:
    return [np.full((px, px, 3), value + k, np.uint8) for k in range(n)]


def _data(page: str) -> dict:
    raw = re.search(
        r'<script type="application/json" id="kit-data">(.*?)</script>', page, re.S
    ).group(1)
    return json.loads(raw)


def test_page_is_self_contained_and_lists_every_cluster():
    kit = render_annotation_kit(
        {4: _tiles(3, 10), 0: _tiles(12, 100), 9: _tiles(1, 200)},
        title="Kit <SYN>",
        country="SYN",
        captions={0: "urban, 120 tiles"},
        samples=8,
    )
    page = kit.html
    assert kit.clusters == [0, 4, 9]
    assert kit.images_per_cluster == {0: 8, 4: 3, 9: 1}
    # Nothing fetched from anywhere: no http(s) URLs, no external script/style/font, images inline.
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "@import" not in page and "url(" not in page
    assert "Kit &lt;SYN&gt;" in page  # text is escaped
    data = _data(page)
    assert [c["id"] for c in data["clusters"]] == [0, 4, 9]
    assert data["clusters"][0]["caption"] == "urban, 120 tiles"
    jpeg = base64.b64decode(data["clusters"][0]["image"].split(",", 1)[1])
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and im.size[0] > im.size[1]  # 4 x 2 sheet of 8 thumbnails


def test_same_input_same_page():
    clusters = {c: _tiles(20, 10 * c) for c in range(5)}
    a = render_annotation_kit(clusters, title="t", country="X", seed=3)
    b = render_annotation_kit(clusters, title="t", country="X", seed=3)
    assert a.html == b.html
    assert np.array_equal(a.preview, b.preview)


def test_script_breaking_text_is_escaped_in_the_embedded_json():
    kit = render_annotation_kit(
        {0: _tiles(1, 0), 1: _tiles(1, 50)},
        title="t",
        captions={0: "</script><script>alert(1)</script>"},
    )
    assert kit.html.count("</script>") == 2  # the data block's and the code's own
    assert _data(kit.html)["clusters"][0]["caption"].startswith("</script>")


def test_unreadable_images_are_skipped_and_reported(tmp_path: Path):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    kit = render_annotation_kit({0: [good, bad, tmp_path / "missing.png"], 1: [bad]}, title="t")
    assert kit.images_per_cluster == {0: 1, 1: 0}
    assert len(kit.skipped) == 3 and any("bad.png" in s for s in kit.skipped)
    cards = _data(kit.html)["clusters"]
    assert cards[1]["image"] == "" and cards[0]["image"].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    "clusters, problem",
    [
        ({0: []}, "at least 2 clusters"),
        ({-1: [], 2: []}, "non-negative"),
        ({0: [np.zeros((4, 4), np.float32)], 1: []}, None),  # a wrong dtype is a skipped image
    ],
)
def test_bad_cluster_input(clusters, problem):
    if problem is None:
        kit = render_annotation_kit(clusters, title="t")
        assert "dtype float32" in kit.skipped[0]
        return
    with pytest.raises(ValueError, match=problem):
        render_annotation_kit(clusters, title="t")


def test_folder_clusters_layout_and_errors(tmp_path: Path):
    for cid, names in {"0": ["10.png", "2.png", "1.png"], "3": ["a.jpg"]}.items():
        (tmp_path / cid).mkdir()
        for n in names:
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / cid / n)
    (tmp_path / "0" / "notes.txt").write_text("ignored")
    (tmp_path / ".cache").mkdir()
    found = folder_clusters(tmp_path)
    assert list(found) == [0, 3]
    assert [p.name for p in found[0]] == ["1.png", "2.png", "10.png"]  # natural order
    (tmp_path / "urban").mkdir()
    with pytest.raises(ValueError, match="urban: a cluster folder must be named"):
        folder_clusters(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        folder_clusters(tmp_path / "nope")


@pytest.mark.skipif(not (SHARED_NK / "clusters").is_dir(), reason="shared NK sample not present")
def test_kit_for_the_real_nk_cluster_folder():
    clusters = folder_clusters(SHARED_NK / "clusters")
    assert list(clusters) == list(range(22)) and all(len(v) == 50 for v in clusters.values())
    kit = render_annotation_kit(clusters, title="NK", country="NK", samples=8, thumb_px=96)
    assert kit.clusters == list(range(22)) and not kit.skipped
    assert set(kit.images_per_cluster.values()) == {8}
    assert kit.size_bytes < 1_500_000  # 22 contact sheets stay a page an annotator can e-mail


def test_annotator_names():
    assert all(map(is_valid_annotator_name, ["eco1", "sat_2", "Kim.J-3", "x" * 64]))
    assert not any(
        map(is_valid_annotator_name, ["", "x" * 65, "../a", "a b", ".hidden", "-a", "naïve"])
    )


def test_folder_fingerprint_follows_contents_not_times(tmp_path: Path):
    assert folder_fingerprint(tmp_path / "missing") is None
    assert folder_fingerprint(tmp_path) is None
    (tmp_path / "notes.md").write_text("not an annotation")
    assert folder_fingerprint(tmp_path) is None
    (tmp_path / "a.pog").write_text("1>0\n")
    first = folder_fingerprint(tmp_path)
    assert first is not None
    (tmp_path / "a.pog").write_text("1>0\n")  # rewritten, same bytes
    assert folder_fingerprint(tmp_path) == first
    (tmp_path / "a.pog").write_text("0>1\n")  # same size, new content
    changed = folder_fingerprint(tmp_path)
    assert changed != first
    (tmp_path / "b.pog").write_text("0>1\n")
    assert folder_fingerprint(tmp_path) not in (first, changed)
    assert folder_fingerprint(tmp_path, ignore=["b.pog"]) == changed
    (tmp_path / "pogs.txt").write_text("0>1\n")
    (tmp_path / "annotators.txt").write_text("x\n")
    (tmp_path / ".a.tmp.pog").write_text("partial")  # an atomic write in progress
    assert [p.name for p in annotation_files(tmp_path)] == [
        "a.pog",
        "annotators.txt",
        "b.pog",
        "pogs.txt",
    ]
