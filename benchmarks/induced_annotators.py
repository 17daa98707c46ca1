"""Induced annotators: a MEASUREMENT STAND-IN for people ranking clusters the platform made.

No person has ranked the clusters of a from-scratch country (``PRKS``: the North Korea sample
without its cluster folder).  To measure how far from-scratch Stage 1 takes the whole graph, each
of the paper's 10 annotators is *induced* onto the new clusters: a new cluster's rank in that
person's POG is the mean, over its member images that come from the paper's cluster folder, of
the tier (0 = least developed) that person gave the image's paper cluster.  Clusters with none of
those images, and paper clusters a person left out, are left out of that person's POG.

These POGs are not human judgements and are never presented as such: the files are named
``induced_<name>.pog`` and written only by ``make prks``; nothing in the package reads this
module.  The paper's cluster of an image is read back from its path
(``.../clusters/<paper id>/<n>.png``) outside the platform, which discarded it.

    python -m benchmarks.induced_annotators --data-root DIR [--country PRKS] [--sample DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from siscore_assets.core.ranking.parse import read_pog_lines

PREFIX = "induced_"
SAMPLE = Path(__file__).resolve().parents[1] / "../shared/data/nk_sample"


def person_tiers(line_tiers: list[list[int]]) -> dict[int, int]:
    """{paper cluster: tier index, 0 = least developed} from tiers listed most developed first."""
    n = len(line_tiers)
    return {c: n - 1 - i for i, tier in enumerate(line_tiers) for c in tier}


def parse_line(line: str) -> list[list[int]]:
    """``3=4>1>0`` -> [[3, 4], [1], [0]] (the annotation folder's line syntax)."""
    return [[int(c) for c in part.split("=")] for part in line.strip().split(">") if part]


def induced_ranks(
    new_ids: np.ndarray, paper_ids: np.ndarray, tiers: dict[int, int], bottom: int
) -> dict[int, float]:
    """Each new cluster's mean paper tier over its members the person ranked (bottom left out)."""
    out: dict[int, float] = {}
    for c in np.unique(new_ids):
        if int(c) == bottom:
            continue
        vals = [tiers[int(p)] for p in paper_ids[new_ids == c] if int(p) in tiers]
        if vals:
            out[int(c)] = float(np.mean(vals))
    return out


def pog_line(ranks: dict[int, float]) -> str:
    """A POG line, most developed first; exactly equal ranks share a tier."""
    levels = sorted(set(ranks.values()), reverse=True)
    return ">".join(
        "=".join(str(c) for c in sorted(k for k, v in ranks.items() if v == lv)) for lv in levels
    )


def paper_cluster_of(path: str) -> int | None:
    """The paper's cluster id of an image under ``clusters/<id>/``, else None."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-3] == "clusters" and parts[-2].isdigit():
        return int(parts[-2])
    return None


def write_induced(data_root: Path, country: str, sample: Path) -> list[Path]:
    """Write ``induced_<name>.pog`` per person into the country's annotation folder."""
    members = data_root / country / "clusters" / "extra_members.npz"
    if not members.is_file():
        raise SystemExit(f"{members}: not found: materialise {country}'s 'clusters' first")
    data = np.load(members)
    paper = [paper_cluster_of(str(p)) for p in data["paths"]]
    keep = np.array([p is not None for p in paper], bool)
    if not keep.any():
        raise SystemExit(f"{members}: no image from a paper cluster folder: nothing to induce")
    new_ids = data["cluster_id"][keep]
    paper_ids = np.array([p for p in paper if p is not None])
    ann = sample / "annotations"
    pogs = read_pog_lines(ann / "pogs.txt", ann / "annotators.txt")
    lines = (ann / "pogs.txt").read_text().splitlines()
    names = [n.strip() for n in (ann / "annotators.txt").read_text().splitlines() if n.strip()]
    out_dir = data_root / country / "annotations"
    out_dir.mkdir(parents=True, exist_ok=True)
    bottom = _bottom(data_root, country)
    written = []
    for name, line in zip(names, lines, strict=True):
        if name not in pogs:
            continue
        ranks = induced_ranks(new_ids, paper_ids, person_tiers(parse_line(line)), bottom)
        path = out_dir / f"{PREFIX}{name}.pog"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(pog_line(ranks) + "\n")
        tmp.replace(path)
        written.append(path)
    return written


def _bottom(data_root: Path, country: str) -> int:
    """The uninhabited cluster's id: K of the fitted clusters (``models/clusters.pkl``)."""
    import pickle

    result = pickle.loads((data_root / country / "models" / "clusters.pkl").read_bytes())
    return int(result.k_urban + result.k_rural)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--country", default="PRKS")
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    a = ap.parse_args(argv)
    for p in write_induced(a.data_root, a.country, a.sample.resolve()):
        print(f"induced POG (measurement stand-in, not a person): {p}: {p.read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
