"""Pretraining / uninhabited filter on the real sample's 740 soft-labelled images: held-out figures.

Trains the habitation CNN exactly as the PRK ``habitation_model`` asset does (soft-label
cross-entropy, the countries file's settings, a stratified seeded 20 % held out) and prints
held-out accuracy, soft cross-entropy and the uninhabited filter's precision / recall, per seed.

    python -m benchmarks.nk_habitation --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from siscore_assets.core.countries import load_countries
from siscore_assets.core.imagery import tile_folder as tf
from siscore_assets.core.models import habitation as encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    country = load_countries().get("PRK")
    m = country.models
    images, labels, _ = tf.read_pretrain_folder(
        country.resolve(country.pretrain), px=m.habitation_input_px
    )
    print(
        f"{len(images)} images at {m.habitation_input_px} px; majority classes (urban, rural, uninhabited): "
        f"{np.bincount(labels.argmax(1), minlength=3).tolist()}"
    )
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        train, held = encoder.holdout_split(labels, m.habitation_holdout or 0.2, seed)
        model, history = encoder.train_habitation(
            images[train],
            labels[train],
            epochs=m.habitation_epochs,
            seed=seed,
            input_px=m.habitation_input_px,
        )
        r = encoder.evaluate_habitation(model, images[held], labels[held])
        rows.append(r)
        print(
            f"seed {seed}: held-out ({len(held)} images) accuracy {r['accuracy']:.3f}, soft CE "
            f"{r['cross_entropy']:.3f}, uninhabited precision {r['uninhabited_precision']:.3f} recall "
            f"{r['uninhabited_recall']:.3f}; train accuracy {history[-1]['accuracy']:.3f} "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
    acc = np.array([r["accuracy"] for r in rows])
    print(
        f"held-out accuracy over seeds: mean {acc.mean():.3f} min {acc.min():.3f} max {acc.max():.3f}"
    )


if __name__ == "__main__":
    main()
