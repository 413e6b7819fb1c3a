"""The numerical check the seed documents (seed 004, "Numerical Stability & Safety Checks"): called where
a model hands a tensor on (logits, embeddings), never after every layer."""

from __future__ import annotations

import torch


def check_finite(x: torch.Tensor, what: str) -> None:
    """Raise RuntimeError with NaN and Inf counts if ``x`` is not finite (skipped on meta).

    One reduction decides (a sum is finite only if every element is); the
    counts are computed only on the failure path, so the check costs one pass.
    The sum is taken in fp32, and a sum that overflows while no element is NaN or
    Inf passes: fp16 logits (autocast) easily add up past fp16's 65,504.
    """
    if x.device.type == "meta":
        return
    if not torch.isfinite(x.sum(dtype=torch.float32)):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        if n_nan == n_inf == 0:
            return
        raise RuntimeError(f"{what} are not finite: {n_nan} NaN and {n_inf} Inf of {x.numel()} values "
                           f"(shape {tuple(x.shape)})")
