"""Training material from the synthetic country: a soft-labelled pretraining set and
simulated annotators' POG lines.

Both stand in for people: four voters labelling pretraining tiles, and a panel of annotators
(careful ones, one careless, some leaving a cluster out) ranking clusters.  They need only the
renderer and the spec, not the country's geography, hence a module apart from the world.
"""

from __future__ import annotations

import numpy as np

from siscore_assets.core.imagery.synthetic.noise import built_fraction, sigmoid
from siscore_assets.core.imagery.synthetic.render import TileRenderer
from siscore_assets.core.imagery.synthetic.spec import (
    ANNOTATOR_ROLES,
    SETTLED,
    URBAN_THRESHOLD,
    SyntheticSpec,
)


def make_pretrain_set(
    renderer: TileRenderer, spec: SyntheticSpec, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images from ``renderer`` at random draws, with 4-vote soft labels.

    Labels are (urban, rural, uninhabited) fractions in quarters, as four people looking
    at the tile would vote: confident far from the class boundaries, split near them.
    """
    rng = np.random.default_rng([int(seed), 31])
    lc = rng.choice(4, n, p=[0.12, 0.22, 0.16, 0.50])
    village = rng.uniform(0.03, 0.35, n)
    town = rng.uniform(0.3, 1.0, n)
    dev = np.where(lc == SETTLED, np.where(rng.random(n) < 0.6, village, town), 0.0)
    keys = np.stack([rng.integers(0, 2**spec.z, n), rng.integers(0, 2**spec.z, n)], axis=1)
    years = rng.choice(np.array(spec.years), n)
    images = renderer.render(keys, lc, built_fraction(dev), years, noise_seed=10_000 + int(seed))
    p_urban = sigmoid((dev - URBAN_THRESHOLD) / 0.04)
    p_empty = np.where(lc == SETTLED, 0.9 * sigmoid((0.06 - dev) / 0.015), 0.97)
    probs = np.stack([(1 - p_empty) * p_urban, (1 - p_empty) * (1 - p_urban), p_empty], axis=1)
    probs = np.where(lc[:, None] == SETTLED, probs, np.array([0.0, 0.03, 0.97]))
    votes = rng.multinomial(4, probs / probs.sum(axis=1, keepdims=True))
    return images, (votes / 4.0).astype(np.float32)


def _names(n_annotators: int, careless: int) -> list[str]:
    return [
        f"careless{i + 1}" if i == careless else f"{ANNOTATOR_ROLES[i % 3]}{i + 1}"
        for i in range(n_annotators)
    ]


def simulated_annotator_names(n_annotators: int, seed: int) -> list[str]:
    """The names :func:`simulate_pog_lines` gives, known before any cluster exists (the same
    first draw), so the annotators' partitions can be registered up front."""
    return _names(n_annotators, int(np.random.default_rng([int(seed), 41]).integers(n_annotators)))


def simulate_pog_lines(
    n_annotators: int, cluster_development: dict[int, float], seed: int
) -> dict[str, str]:
    """Per-annotator POG lines (most developed first) from clusters' mean true development.

    Careful annotators see the truth with small noise and tie near-equal clusters; one is
    careless (large noise, random swaps); one or two leave a cluster out (incomparable).
    Clusters with development <= 0 (the uninhabited cluster) sit alone at the bottom.
    """
    rng = np.random.default_rng([int(seed), 41])
    careless = int(rng.integers(n_annotators))
    names = _names(n_annotators, careless)
    ids = sorted(int(c) for c in cluster_development)
    bottom = [c for c in ids if cluster_development[c] <= 0]
    free = [c for c in ids if cluster_development[c] > 0]
    means = np.array([float(cluster_development[c]) for c in free])
    span = float(means.max() - means.min()) if len(means) > 1 else 1.0
    span = span if span > 0 else 1.0
    careful = [i for i in range(n_annotators) if i != careless]
    n_drop = int(rng.integers(1, 3)) if len(free) >= 3 else 0
    droppers = set(rng.choice(careful, min(n_drop, len(careful)), replace=False).tolist())
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        sigma = (0.3 if i == careless else (0.03, 0.05, 0.04)[i % 3]) * span
        v = means + rng.normal(0, sigma, len(means))
        order = list(np.argsort(-v, kind="stable"))
        if i == careless:
            for _ in range(max(1, len(order) // 4)):
                if len(order) > 1:
                    a = int(rng.integers(len(order) - 1))
                    order[a], order[a + 1] = order[a + 1], order[a]
        if i in droppers:
            order.pop(int(rng.integers(len(order))))
        tiers: list[list[int]] = []
        head = None
        for o in order:
            if tiers and head is not None and abs(v[head] - v[o]) < 0.03 * span:
                tiers[-1].append(free[o])
            else:
                tiers.append([free[o]])
                head = o
        if bottom:
            tiers.append(list(bottom))
        out[name] = ">".join("=".join(str(c) for c in sorted(t)) for t in tiers)
    return out
