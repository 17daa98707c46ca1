"""What PyTorch Lightning's Trainer would cost the scorer's training loop: the same steps (the
``cpu`` recipe's network and batch shape, the same precomputed batches, Adam + cosine decay)
driven by a plain loop and by ``lightning.Trainer``, wall time of each.

Lightning is not a dependency of the platform; install it to run this (it is only measured):

    pip install --target /tmp/lpkgs --no-deps lightning lightning_utilities torchmetrics
    PYTHONPATH=/tmp/lpkgs python -m benchmarks.trainer_overhead --steps 24
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from siscore_assets.core.model_settings import recipe_settings
from siscore_assets.core.models.scorer import ScorerConfig, ScorerModel
from siscore_assets.core.models.scorer_training import rank_loss, uint8_tensor


def batches(steps: int, n: int, px: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches of ``n`` uint8 tiles (a PRK step's size) with tier targets."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        images = rng.integers(0, 256, (n, px, px, 3), dtype=np.uint8)
        out.append((uint8_tensor(images, px), torch.arange(n, dtype=torch.float32) % 23))
    return out


def model_and_optimizer(steps: int) -> tuple[ScorerModel, torch.optim.Optimizer, object]:
    m = recipe_settings("cpu")
    torch.manual_seed(0)
    model = ScorerModel(ScorerConfig.of(m))
    opt = torch.optim.Adam(model.parameters(), lr=m.lr)
    return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))


def plain_loop(data: list) -> float:
    model, opt, sched = model_and_optimizer(len(data))
    started = time.perf_counter()
    model.train()
    for x, y in data:
        loss = rank_loss(model(x), y, "pairwise")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - started


def lightning_loop(data: list) -> float:
    import lightning

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.opt, self.sched = model_and_optimizer(len(data))

        def training_step(self, batch, _index):
            x, y = batch
            return rank_loss(self.model(x), y, "pairwise")

        def configure_optimizers(self):
            return {
                "optimizer": self.opt,
                "lr_scheduler": {"scheduler": self.sched, "interval": "step"},
            }

    trainer = lightning.Trainer(
        max_steps=len(data),
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    started = time.perf_counter()
    trainer.fit(Module(), loader)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24, help="the cpu recipe's steps per seed")
    ap.add_argument("--images", type=int, default=117, help="tiles per step (PRK: 69 + 24 + 24)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    args = ap.parse_args()
    px = recipe_settings("cpu").tensor_px
    data = batches(args.steps, args.images, px)
    plain_loop(data[:2])  # warm-up: first kernels
    plain, framed = [], []
    for i in range(args.repeats):  # alternate, so a busy moment does not favour one side
        for run, times in ((plain_loop, plain), (lightning_loop, framed))[:: 1 if i % 2 else -1]:
            times.append(run(data))
    a, b = float(np.median(plain)), float(np.median(framed))
    print(
        f"{args.steps} steps of {args.images} tiles at {px} px, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}: plain loop {a:.1f} s, Lightning Trainer {b:.1f} s "
        f"({b / a:.3f}x, {(b - a) / args.steps * 1000:+.0f} ms a step); "
        f"all: {[round(t, 1) for t in plain]} / {[round(t, 1) for t in framed]}"
    )


if __name__ == "__main__":
    main()
