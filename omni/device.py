"""Where a model runs, and in which precision: chosen once, the same way for training and inference.

* device ``auto``: ``cuda`` if a GPU is visible, else ``mps`` (Apple), else ``cpu``.
  An explicit device that is not available is an error, never a silent CPU run.
* precision ``auto``: bf16 autocast on a GPU that supports it, fp16 autocast on
  one that does not (and on ``mps``), **fp32 on the CPU** (CPU autocast rarely
  speeds up small models, and fp32 keeps CPU runs bit-reproducible; ask for
  ``bf16``/``fp16`` explicitly to try it).
"""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` → cuda, mps or cpu (first available); under torchrun, cuda means ``cuda:<local_rank>``."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for, but torch.cuda.is_available() is False "
                               f"(torch {torch.__version__}); use --device cpu")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch.backends.mps.is_available() is False")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported training device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """Turn ``auto`` into bf16/fp16/fp32 for this device; check an explicit choice is possible."""
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "mps":
            return "fp16"
        return "fp32"
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"precision bf16 asked for, but {torch.cuda.get_device_name(device)} has no bf16 "
                           f"support; use fp16 (with the GradScaler) or fp32")
    if name != "fp32" and not torch.amp.autocast_mode.is_autocast_available(device.type):
        raise RuntimeError(f"precision {name} needs autocast, which torch {torch.__version__} "
                           f"does not offer on {device.type}; use fp32")
    return name
