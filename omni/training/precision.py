"""Where training runs and in which precision: device auto-selection, autocast and the GradScaler.

Choices, made once and announced by the loop:

* device ``auto``: ``cuda`` if a GPU is visible, else ``mps`` (Apple), else ``cpu``.
  An explicit device that is not available is an error, never a silent CPU run.
* precision ``auto``: bf16 autocast on a GPU that supports it, fp16 autocast on
  one that does not (and on ``mps``), **fp32 on the CPU** (CPU autocast rarely
  speeds up small models, and fp32 keeps CPU runs bit-reproducible; ask for
  ``bf16``/``fp16`` explicitly to try it).
* the GradScaler exists only for fp16: bf16 has fp32's exponent range, so its
  gradients do not underflow and scaling them would only add work.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

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


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """Autocast settings plus the (fp16-only) GradScaler for one run.

    ``precision.autocast()`` wraps the forward pass and loss; ``precision.scaler``
    is a ``torch.amp.GradScaler`` that is *enabled* only for fp16, so the loop
    can call ``scale``/``unscale_``/``step``/``update`` unconditionally: a
    disabled scaler passes everything through.
    """

    name: str                 # bf16 | fp16 | fp32 (never auto)
    device: torch.device
    scaler: torch.amp.GradScaler

    @classmethod
    def create(cls, name: str, device: torch.device, fp16_init_scale: float = 2.0 ** 16) -> "Precision":
        name = resolve_precision(name, device)
        scaler = torch.amp.GradScaler(device.type, init_scale=fp16_init_scale, enabled=(name == "fp16"))
        return cls(name=name, device=device, scaler=scaler)

    def autocast(self):
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.name])

    @property
    def uses_scaler(self) -> bool:
        return self.scaler.is_enabled()

    def describe(self) -> str:
        what = {"bf16": "bf16 autocast (no loss scaling needed)",
                "fp16": f"fp16 autocast with GradScaler (initial scale {self.scaler.get_scale():g})",
                "fp32": "fp32 (no autocast)"}[self.name]
        return f"{self.device} · {what}"
