"""An explicit KV cache, passed into ``forward`` (no hidden state on the model).

During generation the keys and values of past positions never change, so each
layer stores them once and a new token only computes its own. The cache owns
pre-allocated buffers for every layer; ``length`` is how many positions are
filled, and it is also where RoPE positions of the next tokens start::

    cache = KVCache.for_model(model, batch_size=1, max_len=512)
    logits = model(ids, cache=cache)          # prefill: positions 0..T-1
    logits = model(next_id, cache=cache)      # decode: position T
"""

from __future__ import annotations

import torch


class KVCache:
    """k, v buffers: (n_layers, B, n_kv_heads, max_len, head_dim)."""

    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, head_dim: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        shape = (n_layers, batch_size, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.n_layers, self.batch_size, self.max_len = n_layers, batch_size, max_len
        self.length = 0  # positions filled so far (shared by all layers)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H_kv, T, D) at positions [length, length + T) of ``layer``
        and return all keys/values up to length + T. ``advance`` moves ``length``
        once every layer has written."""
        B, _, T, _ = k.shape
        end = self.length + T
        if B != self.batch_size:
            raise ValueError(f"KVCache was made for batch {self.batch_size}, got batch {B}")
        if end > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions; {self.length} filled + {T} new = {end} is too many")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, T: int) -> None:
        self.length += T

    def reset(self) -> None:
        self.length = 0

    @classmethod
    def for_model(cls, model, batch_size: int, max_len: int | None = None, dtype=None, device=None) -> "KVCache":
        """Build a cache sized for a decoder that exposes ``cache_spec()`` →
        (n_layers, n_kv_heads, head_dim, ctx_len) and a parameter to take dtype/device from."""
        n_layers, n_kv_heads, head_dim, ctx_len = model.cache_spec()
        p = next(model.parameters())
        return cls(n_layers, batch_size, n_kv_heads, head_dim, max_len or ctx_len,
                   dtype=dtype or p.dtype, device=device or p.device)
