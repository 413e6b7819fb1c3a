"""In which precision training runs: autocast and the GradScaler.

Choices, made once and announced by the loop (the device and the precision's name are chosen by
:func:`omni.device.resolve_device` and :func:`omni.device.resolve_precision`, which inference shares):

* the GradScaler exists only for fp16: bf16 has fp32's exponent range, so its
  gradients do not underflow and scaling them would only add work.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from omni.device import resolve_precision


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
