"""Several GPUs (or CPU processes) with ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=2 train/thinker.py --config ...`` starts one process
per GPU and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_distributed` reads them (a plain ``python`` run
has none and stays single-process). The backend is NCCL on CUDA, gloo
otherwise (the CPU test runs two gloo processes).

What DDP changes in the loop:

* every rank holds a full model copy; DDP averages gradients across ranks
  during ``backward`` — but only on the final micro-step of an accumulated
  step: the others run inside ``model.no_sync()`` (see :func:`sync_context`);
* each rank reads its own slice of every global batch (``ShuffledBatches``);
* guard decisions must agree across ranks: a rank that sees a bad loss makes
  them all skip (:func:`any_rank`), else one rank would step and diverge;
* only rank 0 evaluates, writes metrics, checkpoints and draws the plot.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment; single-process if it describes none."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return DistInfo()
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {key} is not: "
                               f"start multi-process runs with torchrun")
    info = DistInfo(rank=int(os.environ["RANK"]), local_rank=int(os.environ["LOCAL_RANK"]),
                    world_size=int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP-wrap the model for a multi-process run; the model itself otherwise."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP wrapper (what checkpoints and eval use)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sync_context(model: nn.Module, final_micro_step: bool):
    """``model.no_sync()`` on non-final micro-steps under DDP: gradients accumulate locally, no all-reduce."""
    if isinstance(model, nn.parallel.DistributedDataParallel) and not final_micro_step:
        return model.no_sync()
    return contextlib.nullcontext()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True if ``flag`` is True on any rank (a MAX all-reduce of one number)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    """Average a float over ranks (for logging the global loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64 if device.type != "mps" else torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()              # no rank tears gloo down while another still talks to it (a rare abort)
        dist.destroy_process_group()
