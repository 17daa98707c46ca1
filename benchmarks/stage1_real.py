"""Stage 1 on real imagery: the platform's clusters of the North Korea sample vs the paper's.

Every real image of the sample (the 415 district tile-years, the 1,100 cluster images and the
1,250 labelled images) is one unlabelled image of one country.  The habitation filter
(``stage1_features: stats``, :mod:`siscore_assets.core.models.scene_features`) is fitted on the
labelled images' fit rows (the platform's seeded label split, ``habitation_holdout`` 0.2 of
them held out: never trained on, reported here); the inhabited images are clustered, urban and
rural apart, K by silhouette in the PRKS country's range.  On the 1,100 cluster images the
clusters are compared with the paper's 22 ids (folder names): ARI, NMI, and ``tier_rho``: each
image gets its cluster's mean paper tier (the ensembled POG's tiers of the 10 people, computed
here with the platform's ensemble), Spearman against the image's own paper tier.

    python -m benchmarks.stage1_real [--sample DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import clustering, scene_features, training_data

SAMPLE = Path(__file__).resolve().parents[1] / "../shared/data/nk_sample"
PRKS = Path(__file__).resolve().parent / "prks" / "countries.yaml"


def load_sample(root: Path) -> dict:
    """Images of the sample: tiles, cluster images (+ paper ids), labelled images (+ labels)."""
    by_cluster, _ = tf.read_cluster_folder(root / "clusters")
    images, labels, _ = tf.read_pretrain_folder(root / "pretrain")
    tiles = [
        tf.read_rgb(p) for y in sorted((root / "tiles").iterdir()) for p in sorted(y.glob("*.png"))
    ]
    return {
        "tiles": np.stack(tiles),
        "clusters": np.concatenate([by_cluster[c] for c in sorted(by_cluster)]),
        "paper_id": np.concatenate([[c] * len(by_cluster[c]) for c in sorted(by_cluster)]),
        "labelled": images,
        "labels": labels,
    }


def paper_tiers(root: Path) -> dict[int, int]:
    """The paper clusters' tiers (0 = least developed) in the ensemble of the 10 people's POGs."""
    from siscore_assets.core.ranking.ensemble import ensemble
    from siscore_assets.core.ranking.parse import read_pog_lines

    ann = root / "annotations"
    pogs = read_pog_lines(ann / "pogs.txt", ann / "annotators.txt")
    ens = ensemble(list(pogs.values()), list(range(22)), names=list(pogs))
    return {int(c): int(t) for t, tier in enumerate(ens.tiers) for c in tier}


def tier_rho(labels: np.ndarray, tiers: np.ndarray) -> float:
    """Spearman of each image's cluster-mean paper tier against its own paper tier."""
    mean = pd.Series(tiers).groupby(labels).transform("mean").to_numpy()
    return float(spearmanr(mean, tiers).correlation)


def compare(labels: np.ndarray, paper: np.ndarray, tiers: np.ndarray) -> dict[str, float]:
    return {
        "ari": adjusted_rand_score(paper, labels),
        "nmi": normalized_mutual_info_score(paper, labels),
        "tier_rho": tier_rho(labels, tiers),
    }


def cluster(x, inhabited, urban, k_range, seed) -> tuple[np.ndarray, clustering.ClusterResult]:
    """The platform's k-means (urban and rural apart, K by silhouette); uninhabited = K."""
    res = clustering.cluster_tiles(
        x[inhabited], urban[inhabited], k_range_urban=k_range, k_range_rural=k_range, seed=seed
    )
    labels = np.full(len(x), res.n_clusters)
    labels[inhabited] = res.labels
    return labels, res


def run(sample: Path, cache: Path | None) -> pd.DataFrame:
    m = load_countries(PRKS).get("PRKS").models
    data = load_sample(sample)
    pool = np.concatenate([data["tiles"], data["clusters"], data["labelled"]])
    nt, nc = len(data["tiles"]), len(data["clusters"])
    cached = cache / "descriptors.npy" if cache else None
    if cached is not None and cached.is_file():
        desc = np.load(cached)
    else:
        t = time.perf_counter()
        desc = scene_features.descriptors(pool)
        print(f"descriptors of {len(pool)} images: {time.perf_counter() - t:.0f} s")
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, desc)
    lab_desc = desc[nt + nc :]
    fit, _, held = training_data.label_roles(m, data["labels"])
    filt = scene_features.fit_habitation_stats(lab_desc[fit], data["labels"][fit])
    held_m = scene_features.heldout_metrics(filt, lab_desc[held], data["labels"][held])
    probs = filt.predict_desc(desc)
    inhabited = probs[:, 2] < 0.5
    urban = inhabited & (probs[:, 0] >= probs[:, 1])
    paper = data["paper_id"]
    tiers = np.vectorize(paper_tiers(sample).get)(paper).astype(float)
    cl = slice(nt, nt + nc)
    print(
        f"filter held-out ({int(held_m['images'])} labelled images never trained on): "
        f"accuracy {held_m['accuracy']:.3f}, urban recall {held_m.get('urban_recall', 0):.3f}; "
        f"cluster images called inhabited {inhabited[cl].mean():.2f}, urban "
        f"(paper urban / rural) {urban[cl][paper <= 10].mean():.2f} / "
        f"{urban[cl][paper > 10].mean():.2f}"
    )
    x = scene_features.cluster_space(desc)
    rows = []
    k_default = range(m.k_range_urban[0], m.k_range_urban[1] + 1)
    for name, k_range in (
        ("platform (K by silhouette in the PRKS range)", k_default),
        ("silhouette over 3..12", range(3, 13)),
        ("K = 11 + 11 (the paper's)", range(11, 12)),
    ):
        labels, res = cluster(x, inhabited, urban, k_range, m.seed)
        rows.append(
            {
                "run": name,
                "k_urban": res.k_urban,
                "k_rural": res.k_rural,
                **compare(labels[cl], paper, tiers),
            }
        )
        sil = {g: {k: round(v, 3) for k, v in d.items()} for g, d in res.silhouettes.items()}
        print(f"{name}: silhouettes {sil}")
    # the same 16 numbers with the paper's own urban / rural split, on the cluster images alone
    only = np.zeros(len(x), bool)
    only[cl] = True
    p_urban = np.zeros(len(x), bool)
    p_urban[cl] = paper <= 10
    labels, res = cluster(x, only, p_urban, range(11, 12), m.seed)
    rows.append(
        {
            "run": "reference: cluster images only, paper's urban/rural, K 11 + 11",
            "k_urban": res.k_urban,
            "k_rural": res.k_rural,
            **compare(labels[cl], paper, tiers),
        }
    )
    out = pd.DataFrame(rows)
    out.attrs["heldout"] = held_m
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    ap.add_argument("--cache", type=Path, default=None, help="keep the descriptors here")
    a = ap.parse_args(argv)
    table = run(a.sample.resolve(), a.cache)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
