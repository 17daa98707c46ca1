"""The North Korea sample from the paper's public repository (DonghyunAhn/development-measure on
GitHub, MIT License), laid out as ``../shared/data/nk_sample`` is (its README).

The repository is listed once (GitHub's tree API) and only the files of an allow-list are
fetched, each mapped to its place in the sample: the yearly tiles, the labelled pretraining
images and their soft labels, the 22 clusters' images, the 10 POGs and the licence.  The paper's
evaluation files (tile ground truth, its own tile scores, the tables' reference data) match a
deny-list and are never requested, whatever the allow-list says.  Files go to a temporary
folder renamed into place at the end, so an interrupted download leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = "DonghyunAhn/development-measure"
REF = "main"
API = f"https://api.github.com/repos/{REPO}/git/trees/{REF}?recursive=1"
RAW = f"https://raw.githubusercontent.com/{REPO}/{REF}/"
#: remote path -> sample path (the first rule that matches).
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^data/NK/nk_(\d{4})/\d+/(\d+_\d+\.png)$"), r"tiles/\1/\2"),
    (re.compile(r"^data/nk_annotation/gis/(\d+\.png)$"), r"pretrain/images/\1"),
    (re.compile(r"^data/nk_annotation/labelling_result\.csv$"), "pretrain/labels.csv"),
    (re.compile(r"^data/[^/]*[Cc]luster[^/]*/(\d+)/(\d+\.png)$"), r"clusters/\1/\2"),
    (re.compile(r"^Stage2/POG_annotation/POG_collection\.txt$"), "annotations/pogs.txt"),
    (re.compile(r"^Stage2/POG_annotation/POG_annotators\.txt$"), "annotations/annotators.txt"),
    (re.compile(r"^LICENSE$"), "LICENSE-source.txt"),
)
#: Never fetched: the paper's evaluation material (ground truth, its scores, reference tables).
DENY = re.compile(r"(?i)(^Stage3/|^Materials/|_ref/|gt_stats|ground.?truth|scores?\.csv$|evaluat)")
WHERE = (
    f"https://github.com/{REPO}: data/NK/nk_<year>/ (tiles), data/nk_annotation/ (pretraining "
    "images and labels), the cluster images and Stage2/POG_annotation/ (POGs)"
)


class SampleError(RuntimeError):
    """The sample could not be fetched; the message says what to fetch and where to put it."""


def plan(paths: list[str]) -> dict[str, str]:
    """Remote path -> sample path for every allowed file (denied files are left out)."""
    out: dict[str, str] = {}
    for path in paths:
        if DENY.search(path):
            continue
        for pattern, target in RULES:
            if pattern.match(path):
                out[path] = pattern.sub(target, path)
                break
    return out


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "siscore-sample"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)/file
        return response.read()


def fetch(
    dest: Path,
    *,
    api: str = API,
    raw: str = RAW,
    timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Download the sample into ``dest`` (which must not hold one yet); returns files per part."""
    dest = Path(dest)
    if (dest / "tiles").is_dir():
        raise SampleError(f"{dest} already holds a sample (tiles/); remove it or choose --dest")
    try:
        listing = json.loads(_get(api, timeout))
        paths = [e["path"] for e in listing.get("tree", []) if e.get("type") == "blob"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise SampleError(
            f"cannot list {api} ({_reason(exc)}); offline: fetch {WHERE}, lay it out under "
            f"{dest} as tiles/<year>/<y>_<x>.png, pretrain/, clusters/<id>/, annotations/ "
            "(docs/real-imagery.md), or set SISCORE_PRK_ROOT to a copy"
        ) from None
    wanted = plan(paths)
    if not any(t.startswith("tiles/") for t in wanted.values()):
        raise SampleError(f"{api}: the listing has no sample tiles (data/NK/nk_<year>/...)")
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    counts: dict[str, int] = {}
    try:
        for i, (remote, local) in enumerate(sorted(wanted.items()), 1):
            out = tmp / local
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                out.write_bytes(_get(raw + remote, timeout))
            except (urllib.error.URLError, OSError) as exc:
                raise SampleError(f"{raw + remote}: {_reason(exc)}; nothing kept") from None
            part = local.split("/", 1)[0]
            counts[part] = counts.get(part, 0) + 1
            if i % 200 == 0:
                log(f"  {i}/{len(wanted)} files")
        labels = tmp / "pretrain" / "labels.csv"
        if labels.is_file():  # the repository's CSV is already image_id,urban,rural,uninhabited
            labels.write_text(labels.read_text(encoding="utf-8").replace("\r\n", "\n"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            for item in tmp.iterdir():
                os.replace(item, dest / item.name)
            tmp.rmdir()
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__
