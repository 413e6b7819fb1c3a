"""The numerical guards of seed 004 ("Numerical Stability & Safety Checks"), in the seed's order.

Per optimizer step the loop runs::

    1. validate_loss(loss)            not NaN/Inf, inside [loss_min, loss_max]   (per micro-step)
    2. scaler.unscale_(optimizer)     BEFORE any gradient check (fp16: grads are scaled until now)
    3. check_gradients(params)        total norm > explode_grad_norm, or non-finite → skip:
                                      zero the grads, scaler.update(), log, no optimizer step
    4. clip to max_grad_norm
    5. scaler.step(optimizer); scaler.update()

A skipped step is recorded by :class:`SkipTracker`; after
``max_consecutive_skips`` in a row it raises :class:`TrainingDiverged` with the
recent history, because skipping forever would be a training loop that looks
alive and learns nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


class TrainingDiverged(RuntimeError):
    """Too many optimizer steps in a row were skipped by the guards."""


def validate_loss(loss: torch.Tensor, loss_min: float, loss_max: float) -> str | None:
    """None if the loss is usable, else the reason (``"loss is nan"``, ``"loss 2e+06 > loss_max 1e+06"``)."""
    if loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar loss, got shape {tuple(loss.shape)}")
    value = float(loss.detach())
    if math.isnan(value):
        return "loss is nan"
    if math.isinf(value):
        return f"loss is {value}"
    if value > loss_max:
        return f"loss {value:.4g} > loss_max {loss_max:g}"
    if value < loss_min:
        return f"loss {value:.4g} < loss_min {loss_min:g}"
    return None


def grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Total L2 norm over every gradient (fp32 scalar; non-finite if any gradient is)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise RuntimeError("no parameter has a gradient: did loss_fn's loss depend on the model?")
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


def check_gradients(norm: torch.Tensor, explode_grad_norm: float) -> str | None:
    """None if the (already unscaled) total norm is fine, else why the step must be skipped."""
    value = float(norm)
    if not math.isfinite(value):
        return f"grad norm is {value} (non-finite gradients)"
    if value > explode_grad_norm:
        return f"grad norm {value:.4g} > explode_grad_norm {explode_grad_norm:g}"
    return None


def zero_surrogate(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """A loss equal to 0 that touches every parameter.

    Back-propagated in place of an invalid loss, it keeps DDP's gradient
    all-reduce in step across ranks (every rank must run the same backward
    passes) without sending NaN through the model. The step is skipped anyway.
    """
    return sum(p.sum() for p in params) * 0.0


@dataclass
class Skip:
    step: int
    reason: str
    lr: float
    loss_scale: float | None


class SkipTracker:
    """Counts skipped steps; a good step resets the run of consecutive skips."""

    def __init__(self, max_consecutive: int):
        self.max_consecutive = max_consecutive
        self.recent: list[Skip] = []     # the current run of consecutive skips
        self.total = 0

    def ok(self) -> None:
        self.recent.clear()

    def skipped(self, skip: Skip) -> None:
        self.recent.append(skip)
        self.total += 1
        if len(self.recent) >= self.max_consecutive:
            lines = "\n".join(f"  step {s.step}: {s.reason} (lr {s.lr:.3g}"
                              + (f", loss scale {s.loss_scale:g})" if s.loss_scale is not None else ")")
                              for s in self.recent[-self.max_consecutive:])
            raise TrainingDiverged(
                f"{len(self.recent)} consecutive optimizer steps skipped (max_consecutive_skips="
                f"{self.max_consecutive}); training has diverged or the data is broken:\n{lines}\n"
                f"Things to try: a lower lr or longer warm-up, precision fp32 or bf16 instead of fp16, "
                f"check the batches these steps read for empty or corrupt samples.")

    def state_dict(self) -> dict:
        return {"total": self.total, "recent": [vars(s) for s in self.recent]}

    def load_state_dict(self, state: dict) -> None:
        self.total = state["total"]
        self.recent = [Skip(**s) for s in state["recent"]]
