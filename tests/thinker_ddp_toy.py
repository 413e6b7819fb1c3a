"""The Thinker's fused loss trained through :func:`omni.training.fit` (not a test module itself).

``python tests/thinker_ddp_toy.py RUN_DIR [--batch-size B] [--bypass]`` trains a tiny ThinkerLM for
three steps with ``train_module=NextTokenLoss(model)``; the DDP test starts it under ``torchrun
--nproc_per_node 2`` and compares the export with one process on the combined batch. ``--bypass``
calls the loss module around DDP's wrapper instead of through it (the mistake the design avoids):
the gradients are then not all-reduced, and the test checks that the comparison notices.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from omni.models.thinker import ThinkerConfig, ThinkerLM  # noqa: E402
from omni.training import ShuffledBatches, TrainConfig, fit, setup  # noqa: E402
from omni.training.lm import NextTokenLoss, next_token_loss  # noqa: E402

TINY = ThinkerConfig(vocab_size=61, ctx_len=16, d_model=32, n_layers=2, n_heads=2, ffn_hidden=64)


def windows(n: int = 32, seed: int = 5) -> torch.Tensor:
    """(n, ctx_len + 1) random token windows."""
    return torch.randint(0, TINY.vocab_size, (n, TINY.ctx_len + 1), generator=torch.Generator().manual_seed(seed))


def bypassing_loss(objective, batch):
    """next_token_loss on the module inside DDP's wrapper: DDP's forward never runs, so no gradient sync."""
    inner = objective.module if isinstance(objective, nn.parallel.DistributedDataParallel) else objective
    return next_token_loss(inner, batch)


def run(run_dir, batch_size: int, bypass: bool = False):
    cfg = TrainConfig(seed=7, max_steps=3, batch_size=batch_size, lr=3e-3, warmup_steps=1, precision="fp32",
                      device="cpu", checkpoint_freq=1000, eval_freq=1000, progress=False)
    ctx = setup(cfg)
    model = ThinkerLM(TINY)
    data = ShuffledBatches(windows(), cfg.batch_size, cfg.seed, rank=ctx.dist.rank, world_size=ctx.dist.world_size)
    loss_fn = bypassing_loss if bypass else next_token_loss
    result = fit(ctx, model, loss_fn, data, run_dir=run_dir, model_config=TINY, train_module=NextTokenLoss(model))
    ctx.close()
    return model, result


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--bypass", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    _, result = run(args.run_dir, args.batch_size, args.bypass)
    print(f"finished: {result.step} steps, {result.updates} applied")


if __name__ == "__main__":
    main()
