"""Multi-head self-attention with optional grouped-query heads, q/k RMSNorm,
RoPE and an explicit KV cache, computed by ``F.scaled_dot_product_attention``.

Layer names follow the Hugging Face Llama/Qwen layout (q_proj, k_proj, v_proj,
o_proj, q_norm, k_norm) so real checkpoints map onto it one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.nn.kv_cache import KVCache
from omni.nn.norm import RMSNorm
from omni.nn.rope import apply_rope


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, n_kv_heads: int | None = None, head_dim: int | None = None,
                 causal: bool = True, qkv_bias: bool = False, k_bias: bool | None = None, out_bias: bool = False,
                 qk_norm: bool = False, norm_eps: float = 1e-6, fused_qkv: bool = False, name: str = "attn"):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if head_dim is None:
            assert dim % n_heads == 0, f"dim ({dim}) must be divisible by n_heads ({n_heads}) unless head_dim is given"
            head_dim = dim // n_heads
        assert n_heads % n_kv_heads == 0, f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})"
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.causal, self.name = causal, name
        k_bias = qkv_bias if k_bias is None else k_bias   # Whisper: q/v biased, k not
        if fused_qkv:
            # One matmul makes q, k and v (as nanoGPT's c_attn): fewer, larger GEMMs. Models that load
            # Hugging Face checkpoints (Qwen3, Whisper) keep the three separate projections instead.
            assert k_bias == qkv_bias, "a fused qkv projection has one bias setting for q, k and v"
            self.qkv_proj = nn.Linear(dim, (n_heads + 2 * n_kv_heads) * head_dim, bias=qkv_bias)
        else:
            self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=qkv_bias)
            self.k_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=k_bias)
            self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=qkv_bias)
        self.fused_qkv = fused_qkv
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=out_bias)
        # Qwen3: per-head RMSNorm on q and k before RoPE.
        self.q_norm = RMSNorm(head_dim, norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(head_dim, norm_eps) if qk_norm else None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, layer: int = 0, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C) → (B, T, C).

        rope: cos, sin (T, D) for the positions of x, or None (no rotary positions).
        cache: keys/values of earlier positions; x's are appended at cache.length.
        attn_mask: optional boolean (B, 1, T, S) mask, True = may attend (e.g. padding).
        """
        B, T, _ = x.shape
        H, Hkv, D = self.n_heads, self.n_kv_heads, self.head_dim
        if self.fused_qkv:
            qkv = self.qkv_proj(x).view(B, T, H + 2 * Hkv, D)                            # (B, T, H+2Hkv, D)
            q, k, v = qkv.split([H, Hkv, Hkv], dim=2)
        else:
            q = self.q_proj(x).view(B, T, H, D)                                          # (B, T, H, D)
            k = self.k_proj(x).view(B, T, Hkv, D)                                        # (B, T, Hkv, D)
            v = self.v_proj(x).view(B, T, Hkv, D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            cos, sin = rope[0][:, None], rope[1][:, None]                                # (T, 1, D): every head
            if self.fused_qkv and self.q_norm is None:   # q and k are neighbours in qkv: rotate both at once
                q, k = apply_rope(qkv[:, :, :H + Hkv], cos, sin).split([H, Hkv], dim=2)
            else:
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)                 # (B, H or Hkv, T, D)
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.update(layer, k, v)                                             # (B, Hkv, S, D)
        S = k.shape[2]
        trace.record(f"{self.name}.q", q, "queries, one row per head")
        trace.record(f"{self.name}.k", k, "keys (cached positions included)")
        trace.record(f"{self.name}.v", v, "values (cached positions included)")
        trace.record(f"{self.name}.scores", (B, self.n_heads, T, S), "attention scores q·kᵀ/√d (inside SDPA)")

        if self.n_kv_heads != self.n_heads:   # grouped-query attention: share each kv head
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)                                          # (B, H, S, D)
            v = v.repeat_interleave(rep, dim=1)
        mask, is_causal = attn_mask, False
        if self.causal and T > 1:
            if start == 0 and attn_mask is None:
                is_causal = True   # SDPA's fused causal path
            else:                   # chunked prefill after a cache, or an extra mask: build it
                causal = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=start)
                mask = causal if attn_mask is None else (attn_mask & causal)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)                  # (B, T, H*D)
        return self.o_proj(y)
