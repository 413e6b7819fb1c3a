"""Feed-forward layers."""

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): the Llama/Qwen feed-forward. (B, T, C) → (B, T, C).

    ``fused=True`` computes gate and up with one matmul (``gate_up_proj``, gate rows
    first); Hugging Face checkpoints (Qwen3) keep the separate ``gate_proj``/``up_proj``.
    """

    def __init__(self, dim: int, hidden: int, bias: bool = False, fused: bool = False):
        super().__init__()
        self.fused = fused
        if fused:
            self.gate_up_proj = nn.Linear(dim, 2 * hidden, bias=bias)
        else:
            self.gate_proj = nn.Linear(dim, hidden, bias=bias)
            self.up_proj = nn.Linear(dim, hidden, bias=bias)
        self.down_proj = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            gate, up = self.gate_up_proj(x).chunk(2, dim=-1)                # each (B, T, hidden)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.silu(gate) * up)


class GELUMLP(nn.Module):
    """fc2(gelu(fc1(x))): the ViT/Whisper feed-forward. (B, T, C) → (B, T, C)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
