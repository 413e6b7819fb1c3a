"""The checks the seed documents (seed 004, "Numerical Stability & Safety Checks"), made where a model
receives ids (:func:`check_ids`) or hands a tensor on (:func:`check_finite`: logits, embeddings), never
after every layer."""

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


def check_ids(ids: torch.Tensor, size: int, what: str = "token id", table: str = "the vocabulary",
              hints: dict[int, str] | None = None) -> None:
    """Raise ValueError naming an id of ``ids`` outside ``table`` [0, ``size``) (skipped on meta or
    when empty); ``hints`` adds a sentence for a known bad id (MuFun's -200 audio placeholder)."""
    if ids.numel() == 0 or ids.device.type == "meta":
        return
    lo, hi = (int(v) for v in torch.aminmax(ids))
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        hint = f" ({hints[bad]})" if hints and bad in hints else ""
        raise ValueError(f"{what} {bad} is outside {table} [0, {size}){hint}")
