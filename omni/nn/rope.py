"""Rotary position embedding (RoPE), in the "rotate half" layout used by
Llama/Qwen checkpoints, so real weights load without permuting q/k rows.

Each pair of channels (i, i + D/2) of a query or key at position p is rotated by
the angle p · theta^(-2i/D). Attention scores then depend only on the distance
between positions. With a KV cache, new tokens take positions that continue from
the cache length.
"""

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Produces cos/sin tables for positions [start, start + T)."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        assert head_dim % 2 == 0, f"RoPE needs an even head_dim, got {head_dim}"
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)

    def forward(self, start: int, T: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return cos, sin of shape (T, D) for positions start .. start+T-1 (fp32)."""
        inv_freq = self.inv_freq if device is None else self.inv_freq.to(device)
        pos = torch.arange(start, start + T, device=inv_freq.device, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)             # (T, D/2)
        emb = torch.cat([freqs, freqs], dim=-1)         # (T, D)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, T, D); cos, sin: (T, D). Computed in fp32, returned in x's dtype."""
    dtype = x.dtype
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).to(dtype)
