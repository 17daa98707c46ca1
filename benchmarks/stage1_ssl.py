"""Self-supervised pretraining for Stage 1, measured on the North Korea sample's real images.

A new country arrives with imagery only (no ImageNet weights).  This trains a SimCLR encoder
(NT-Xent; a torchvision ResNet-18, random init, 64 px input) on the country's own unlabelled
images: the sample's 2,765 real images (415 district tile-years, 1,100 cluster images, 1,250
labelled images; ids and labels discarded).  Views: random resized crops of the 256 px image
(20-100 % of its area) down to 64 px, one of the 8 flips / 90-degree rotations (a satellite image
has no up), colour jitter (brightness / contrast / saturation / hue: the year-to-year nuisance).
Each pool image is then embedded whole at 64 px (eval mode, backbone's 512 numbers,
L2-normalised) and clustered with the platform's own rules exactly as
:mod:`benchmarks.stage1_real` does (the same pool, the same habitation filter on the 78 scene
descriptors fitted on the labelled fit rows, urban and rural apart, K by silhouette in the PRKS
range, or K = 11 + 11).  On the 1,100 cluster images: ARI / NMI against the paper's 22 ids and
``tier_rho``, for three representations

* ``stats16``: the platform's 16 numbers (``scene_features.cluster_space``), the baseline;
* ``ssl``: the SSL embedding alone;
* ``ssl+stats16``: both, blocks weighted equally (the embedding reduced to its first 16
  principal components over the pool; ``cluster_tiles`` standardises every column, so each
  block then carries 16 unit-variance columns);

each also with the paper's own urban / rural split on the cluster images alone (which separates
what the representation loses from what the filter's split loses).  It also fits the filter
(the platform's class-balanced logistic regression) on the SSL embedding, alone and beside the 78
descriptors, and reports its held-out accuracy / urban recall on the labelled rows it never saw,
the split it makes of the cluster images, and the clusters under that split.

    python -m benchmarks.stage1_ssl --cache /tmp/stage1/bench [--epochs N] [--out DIR]

The encoder checkpoint, its per-epoch log and the embeddings are kept under ``--cache``
(``ssl_e<epochs>_s<seed>.*``): a re-run only clusters.  ``--out`` writes the table as CSV.
CPU only; ``--threads`` torch threads (default 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from torch import nn
from torchvision.models import resnet18
from torchvision.ops import roi_align

from benchmarks import stage1_real as s1
from siscore_assets.core.countries import load_countries
from siscore_assets.core.models import scene_features, training_data
from siscore_assets.core.models.common import resize_tensor


@dataclass(frozen=True)
class SSLConfig:
    """SimCLR settings, chosen up front (small-batch SimCLR defaults), never tuned on the paper's
    cluster ids."""

    #: fits the <= 25 min budget on the 2 shared cores: ~35 s an epoch quiet, ~2 min loaded
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.2
    proj_dim: int = 128
    px: int = 64
    min_scale: float = 0.2
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.05
    seed: int = 0
    threads: int = 2


class SSLEncoder(nn.Module):
    """ResNet-18 backbone (random init, no classifier) and SimCLR's 2-layer projection head."""

    def __init__(self, proj_dim: int = 128) -> None:
        super().__init__()
        self.backbone = resnet18(weights=None)
        self.feat_dim = self.backbone.fc.in_features
        self.backbone.fc = nn.Identity()
        self.head = nn.Sequential(
            nn.Linear(self.feat_dim, self.feat_dim), nn.ReLU(), nn.Linear(self.feat_dim, proj_dim)
        )
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, px, px) in [0, 1] -> (B, 512) backbone features (what is clustered)."""
        return self.backbone((x - self.mean[:, None, None]) / self.std[:, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _hue_shift(x: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma by ``turn`` (fraction of a full turn) in YIQ space."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    c, s = torch.cos(2 * math.pi * turn), torch.sin(2 * math.pi * turn)
    i, q = yiq[:, 1], yiq[:, 2]
    rot = torch.stack(
        [
            yiq[:, 0],
            c[:, None, None] * i - s[:, None, None] * q,
            s[:, None, None] * i + c[:, None, None] * q,
        ],
        dim=1,
    )
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), rot)


def augment(x: torch.Tensor, cfg: SSLConfig, gen: torch.Generator) -> torch.Tensor:
    """One random view of each image: float (B, 3, H, W) in [0, 1] -> (B, 3, px, px) in [0, 1].

    Random resized crop (area share in [min_scale, 1], aspect 3/4..4/3; area-averaged by
    ``roi_align``), one of the 8 flips / right-angle rotations, colour jitter with ``jitter_p``.
    Every draw comes from ``gen``: the same generator state, the same views."""
    b, _, h, w = x.shape
    area = _uniform(b, cfg.min_scale, 1.0, gen) * h * w
    ratio = torch.exp(_uniform(b, math.log(3 / 4), math.log(4 / 3), gen))
    cw = torch.sqrt(area * ratio).clamp(max=w)
    ch = torch.sqrt(area / ratio).clamp(max=h)
    x0 = torch.rand(b, generator=gen) * (w - cw)
    y0 = torch.rand(b, generator=gen) * (h - ch)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], dim=1)
    out = roi_align(x, boxes, output_size=cfg.px, spatial_scale=1.0, aligned=True)
    dihedral = torch.randint(0, 8, (b,), generator=gen)
    for k in range(1, 8):
        sel = dihedral == k
        if sel.any():
            v = torch.rot90(out[sel], k % 4, dims=(2, 3))
            out[sel] = torch.flip(v, dims=(3,)) if k >= 4 else v
    on = (torch.rand(b, generator=gen) < cfg.jitter_p).float()
    bright = 1 + on * _uniform(b, -cfg.brightness, cfg.brightness, gen)
    contrast = 1 + on * _uniform(b, -cfg.contrast, cfg.contrast, gen)
    sat = 1 + on * _uniform(b, -cfg.saturation, cfg.saturation, gen)
    hue = on * _uniform(b, -cfg.hue, cfg.hue, gen)
    out = (out * bright[:, None, None, None]).clamp(0, 1)
    grey = out.mean((1, 2, 3), keepdim=True)
    out = (grey + (out - grey) * contrast[:, None, None, None]).clamp(0, 1)
    lum = 0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3]
    out = (lum + (out - lum) * sat[:, None, None, None]).clamp(0, 1)
    return _hue_shift(out, hue).clamp(0, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner among the 2B - 1 other views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def train_ssl(
    images: np.ndarray, cfg: SSLConfig, log=print
) -> tuple[SSLEncoder, list[dict[str, float]]]:
    """Train the encoder on uint8 (N, H, W, 3) images; seeded, so the same input gives the same
    weights.  Returns the model (eval mode) and one ``{epoch, loss, seconds}`` row per epoch."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = SSLEncoder(cfg.proj_dim)
    whole = torch.cat(
        [resize_tensor(_to_float(images[i : i + 256]), cfg.px) for i in range(0, len(images), 256)]
    )
    model.mean.copy_(whole.mean((0, 2, 3)))
    model.std.copy_(whole.std((0, 2, 3)).clamp_min(1e-3))
    del whole
    n = len(images)
    steps_per_epoch = sum(1 for i in range(0, n, cfg.batch_size) if n - i >= 2)
    total = max(1, cfg.epochs * steps_per_epoch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    history = []
    model.train()
    for epoch in range(cfg.epochs):
        t0, losses = time.perf_counter(), []
        order = torch.randperm(n, generator=gen).numpy()
        for i in range(0, n, cfg.batch_size):
            idx = np.sort(order[i : i + cfg.batch_size])
            if len(idx) < 2:
                continue
            x = _to_float(images[idx])
            v1, v2 = augment(x, cfg, gen), augment(x, cfg, gen)
            loss = nt_xent(model(v1), model(v2), cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        log(f"epoch {row['epoch']}/{cfg.epochs}: loss {row['loss']:.4f}, {row['seconds']:.0f} s")
    return model.eval(), history


def embed(model: SSLEncoder, images: np.ndarray, px: int, batch: int = 256) -> np.ndarray:
    """L2-normalised backbone features of each whole image at ``px`` (eval mode)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            f = model.features(resize_tensor(_to_float(images[i : i + batch]), px))
            out.append(F.normalize(f, dim=1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.feat_dim))


def equal_blocks(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """``a`` reduced to as many principal components as ``b`` has columns, beside ``b``:
    ``cluster_tiles`` standardises every column, so the two blocks weigh the same."""
    za = StandardScaler().fit_transform(a)
    pcs = PCA(n_components=b.shape[1], svd_solver="full", random_state=seed).fit_transform(za)
    return np.hstack([pcs, StandardScaler().fit_transform(b)])


def ssl_embeddings(pool: np.ndarray, cfg: SSLConfig, cache: Path | None) -> tuple[np.ndarray, dict]:
    """The pool's embeddings, from ``cache`` when this config's were kept there."""
    stem = f"ssl_e{cfg.epochs}_s{cfg.seed}"
    emb_path = cache / f"{stem}.npy" if cache else None
    log_path = cache / f"{stem}.json" if cache else None
    if emb_path is not None and emb_path.is_file() and log_path.is_file():
        return np.load(emb_path), json.loads(log_path.read_text())
    t = time.perf_counter()
    model, history = train_ssl(pool, cfg)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    emb = embed(model, pool, cfg.px)
    info = {
        "config": asdict(cfg),
        "history": history,
        "train_seconds": train_s,
        "embed_seconds": time.perf_counter() - t,
        "threads": torch.get_num_threads(),
    }
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cache / f"{stem}.pt")
        np.save(emb_path, emb)
        log_path.write_text(json.dumps(info, indent=1))
    return emb, info


def _descriptors(pool: np.ndarray, cache: Path | None) -> np.ndarray:
    cached = cache / "descriptors.npy" if cache else None
    if cached is not None and cached.is_file():
        return np.load(cached)
    return scene_features.descriptors(pool)


def _filter(fit_x, fit_y, held_x, held_y, all_x):
    """The platform's filter on any features: held-out metrics, inhabited and urban masks."""
    filt = scene_features.fit_habitation_stats(fit_x, fit_y)
    held = scene_features.heldout_metrics(filt, held_x, held_y)
    probs = filt.predict_desc(all_x)
    inhabited = probs[:, 2] < 0.5
    return held, inhabited, inhabited & (probs[:, 0] >= probs[:, 1])


def run(
    sample: Path, cache: Path | None, cfg: SSLConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(cluster table, filter table, training info)."""
    m = load_countries(s1.PRKS).get("PRKS").models
    data = s1.load_sample(sample)
    pool = np.concatenate([data["tiles"], data["clusters"], data["labelled"]])
    nt, nc = len(data["tiles"]), len(data["clusters"])
    desc = _descriptors(pool, cache)
    emb, info = ssl_embeddings(pool, cfg, cache)
    lab = slice(nt + nc, None)
    fit, _, held = training_data.label_roles(m, data["labels"])
    labels = data["labels"]
    paper = data["paper_id"]
    tiers = np.vectorize(s1.paper_tiers(sample).get)(paper).astype(float)
    cl = slice(nt, nt + nc)
    stats16 = scene_features.cluster_space(desc)
    reps = {
        "stats16": stats16,
        "ssl": emb,
        "ssl+stats16": equal_blocks(emb, stats16, m.seed),
    }
    filters = {
        "descriptors (78, the platform's)": desc,
        "ssl (512)": emb,
        "ssl + descriptors": np.hstack([emb, desc]),
    }
    frows, splits = [], {}
    for name, feats in filters.items():
        fl = feats[lab]
        held_m, inh, urb = _filter(fl[fit], labels[fit], fl[held], labels[held], feats)
        splits[name] = (inh, urb)
        frows.append(
            {
                "filter on": name,
                "heldout_acc": held_m["accuracy"],
                "urban_recall": held_m.get("urban_recall", 0.0),
                "inhabited (cluster imgs)": inh[cl].mean(),
                "urban | paper urban": urb[cl][paper <= 10].mean(),
                "urban | paper rural": urb[cl][paper > 10].mean(),
            }
        )
    k_default = range(m.k_range_urban[0], m.k_range_urban[1] + 1)
    only = np.zeros(len(pool), bool)
    only[cl] = True
    p_urban = np.zeros(len(pool), bool)
    p_urban[cl] = paper <= 10
    rows = []
    base_filter = next(iter(filters))
    runs = [
        (rep, f, k, kname)
        for f in filters
        for rep in reps
        for k, kname in ((k_default, "silhouette in PRKS range"), (range(11, 12), "11 + 11"))
        if f == base_filter or kname != "11 + 11"
    ]
    for rep, f, k_range, kname in runs:
        inh, urb = splits[f]
        lab_all, res = s1.cluster(reps[rep], inh, urb, k_range, m.seed)
        rows.append(
            {
                "representation": rep,
                "split": f"filter on {f.split(' (')[0]}",
                "K": kname,
                "k_u+k_r": f"{res.k_urban}+{res.k_rural}",
                **s1.compare(lab_all[cl], paper, tiers),
            }
        )
    for rep, x in reps.items():
        lab_all, res = s1.cluster(x, only, p_urban, range(11, 12), m.seed)
        rows.append(
            {
                "representation": rep,
                "split": "paper's urban/rural, cluster images only",
                "K": "11 + 11",
                "k_u+k_r": f"{res.k_urban}+{res.k_rural}",
                **s1.compare(lab_all[cl], paper, tiers),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(frows), info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=s1.SAMPLE)
    ap.add_argument("--cache", type=Path, default=None, help="keep encoder and embeddings here")
    ap.add_argument(
        "--epochs", type=int, default=SSLConfig.epochs, help="0: random init, the control"
    )
    ap.add_argument("--threads", type=int, default=SSLConfig.threads)
    ap.add_argument("--out", type=Path, default=None, help="write the tables here as CSV")
    a = ap.parse_args(argv)
    cfg = SSLConfig(epochs=a.epochs, threads=a.threads)
    table, ftable, info = run(a.sample.resolve(), a.cache, cfg)
    hist = info["history"]
    if hist:
        print(
            f"SimCLR ResNet-18 at {cfg.px} px, {cfg.epochs} epochs on {info['threads']} threads: "
            f"{np.mean([h['seconds'] for h in hist]):.0f} s / epoch, training "
            f"{info['train_seconds'] / 60:.1f} min, embedding {info['embed_seconds']:.0f} s; "
            f"final loss {hist[-1]['loss']:.3f}"
        )
    else:
        print("--epochs 0: the ResNet-18 at its seeded random init, no SSL (the control)")
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(ftable.to_string(index=False))
        print(table.to_string(index=False))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(a.out / "stage1_ssl_clusters.csv", index=False)
        ftable.to_csv(a.out / "stage1_ssl_filter.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
