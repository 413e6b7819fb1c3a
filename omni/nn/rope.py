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
    """Produces cos/sin tables for positions [start, start + T).

    The tables are computed once up to the longest position seen so far and
    sliced afterwards, so a decode step costs no trigonometry.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        assert head_dim % 2 == 0, f"RoPE needs an even head_dim, got {head_dim}"
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,)
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin (L, D); not in state_dict

    @torch.inference_mode(False)    # a table first built during generation must still serve training
    def _build(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self.inv_freq.to(device)
        pos = torch.arange(length, device=device, dtype=torch.float32)
        freqs = torch.outer(pos, inv_freq)             # (L, D/2)
        emb = torch.cat([freqs, freqs], dim=-1)         # (L, D)
        sin = emb.sin()
        sin[:, : sin.shape[1] // 2].neg_()              # signed: see apply_rope
        return emb.cos(), sin

    def forward(self, start: int, T: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return cos, sin of shape (T, D) for positions start .. start+T-1 (fp32).

        ``sin``'s first half is negated (``[-sin θ, sin θ]``), which turns the
        "rotate half" of :func:`apply_rope` into a plain roll.
        """
        device = torch.device(device) if device is not None else self.inv_freq.device
        end = start + T
        table = self._table
        if table is None or table[0].shape[0] < end or table[0].device != device:
            length = max(end, 2 * table[0].shape[0] if table is not None and table[0].device == device else 0, 512)
            table = self._table = self._build(length, device)
        return table[0][start:end], table[1][start:end]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, T, D); cos, sin: (T, D) from :class:`RotaryEmbedding` (sin signed).
    Any layout whose positions broadcast works, e.g. x (B, T, H, D) with cos, sin
    (T, 1, D), which lets :class:`~omni.nn.Attention` rotate q and k in one call.

    The reference formula is x·cos + rotate_half(x)·sin with rotate_half(x) =
    [-x₂, x₁]. Rolling x by D/2 gives [x₂, x₁]; the signed sin table supplies the
    minus, so the rotation is three ops. Computed in fp32, returned in x's dtype.
    """
    xf = x.float()
    return torch.addcmul(xf * cos, xf.roll(x.shape[-1] // 2, dims=-1), sin).to(x.dtype)
