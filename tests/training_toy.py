"""A tiny regression task for the training-loop tests (not a test module itself).

``python tests/training_toy.py RUN_DIR [--max-steps N] [--checkpoint-freq K] [--sleep S] ...`` trains
it through :func:`omni.training.fit`; the resume-after-kill test kills that process and reruns it, and
the DDP test starts it under ``torchrun --nproc_per_node 2``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omni.training import ShuffledBatches, TrainConfig, fit, setup  # noqa: E402


@dataclass
class ToyConfig:
    d_in: int = 8
    d_hidden: int = 16


class Toy(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.d_in, cfg.d_hidden), nn.Tanh(), nn.Linear(cfg.d_hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def toy_dataset(n: int = 64, d_in: int = 8, seed: int = 123) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2]
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def mse_loss(model, batch):
    pred = model(batch["x"])
    loss = ((pred.float() - batch["y"]) ** 2).mean()
    return loss, {"samples": batch["x"].shape[0]}


def faulty(bad_calls: dict[int, float]):
    """mse_loss, except that the loss of call n (1-based) is multiplied by bad_calls[n] (nan, 1e8, ...)."""
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        loss, metrics = mse_loss(model, batch)
        if calls[0] in bad_calls:
            loss = loss * bad_calls[calls[0]]
        return loss, metrics
    return loss_fn


def toy_config(**changes) -> TrainConfig:
    base = dict(seed=7, max_steps=10, batch_size=4, lr=1e-2, min_lr=1e-3, warmup_steps=2, precision="fp32",
                device="cpu", checkpoint_freq=1000, eval_freq=1000, progress=False)
    base.update(changes)
    return TrainConfig(**base)


def run(run_dir, cfg: TrainConfig, loss_fn=mse_loss, eval_fn=None, n: int = 64):
    ctx = setup(cfg)
    model = Toy(ToyConfig())
    data = ShuffledBatches(toy_dataset(n), cfg.batch_size, cfg.seed, rank=ctx.dist.rank,
                           world_size=ctx.dist.world_size)
    result = fit(ctx, model, loss_fn, data, run_dir=run_dir, model_config=model.cfg, eval_fn=eval_fn)
    return model, result


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--max-steps", type=int, default=12)
    p.add_argument("--checkpoint-freq", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum-steps", type=int, default=1)
    p.add_argument("--sleep", type=float, default=0.0, help="seconds per loss call (gives a killer time)")
    p.add_argument("--nan-call", type=int, default=None, help="loss call (1-based) that returns NaN ...")
    p.add_argument("--nan-rank", type=int, default=0, help="... on this rank only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rank, calls = int(os.environ.get("RANK", "0")), [0]

    def slow_loss(model, batch):
        time.sleep(args.sleep)
        calls[0] += 1
        loss, metrics = mse_loss(model, batch)
        if calls[0] == args.nan_call and rank == args.nan_rank:
            loss = loss * float("nan")
        return loss, metrics

    cfg = toy_config(max_steps=args.max_steps, checkpoint_freq=args.checkpoint_freq, batch_size=args.batch_size,
                     grad_accum_steps=args.grad_accum_steps)
    _, result = run(args.run_dir, cfg, slow_loss)
    print(f"finished: {result.step} steps, {result.updates} applied")


if __name__ == "__main__":
    main()


@pytest.fixture
def one_thread():
    """Tests time tiny models: one intra-op thread avoids OpenMP spinning on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
