"""Whisper's fixed sinusoidal positions, shared by the tiny audio encoder and the full-size Whisper encoder."""

from __future__ import annotations

import math

import torch


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positional table (length, channels): sin in the first half, cos in the second."""
    log_timescale_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2, dtype=torch.float32))
    scaled_time = torch.arange(length, dtype=torch.float32)[:, None] * inv_timescales[None, :]   # (length, C/2)
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1)
