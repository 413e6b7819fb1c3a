"""The pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

from __future__ import annotations

import torch
from torch import nn

from omni import trace
from omni.nn.attention import Attention
from omni.nn.kv_cache import KVCache
from omni.nn.mlp import GELUMLP, SwiGLU
from omni.nn.norm import RMSNorm


class Block(nn.Module):
    """One transformer layer. Attribute names follow the HF Llama/Qwen layout.

    norm: "rms" (RMSNorm) or "layer" (LayerNorm); mlp: "swiglu" or "gelu".
    fused: one matmul for q/k/v and one for the SwiGLU gate/up (models with their own
    checkpoint format); False keeps the Hugging Face layout that real checkpoints load into.
    """

    def __init__(self, dim: int, n_heads: int, ffn_hidden: int, n_kv_heads: int | None = None,
                 head_dim: int | None = None, causal: bool = True, norm: str = "rms", mlp: str = "swiglu",
                 norm_eps: float = 1e-6, qk_norm: bool = False, qkv_bias: bool = False, fused: bool = False,
                 name: str = "block"):
        super().__init__()
        if norm not in ("rms", "layer"):
            raise ValueError(f"norm must be 'rms' or 'layer', got {norm!r}")
        if mlp not in ("swiglu", "gelu"):
            raise ValueError(f"mlp must be 'swiglu' or 'gelu', got {mlp!r}")
        make_norm = (lambda: RMSNorm(dim, norm_eps)) if norm == "rms" else (lambda: nn.LayerNorm(dim, eps=norm_eps))
        self.name = name
        self.input_layernorm = make_norm()
        self.self_attn = Attention(dim, n_heads, n_kv_heads, head_dim, causal=causal, qk_norm=qk_norm,
                                   qkv_bias=qkv_bias, out_bias=qkv_bias, norm_eps=norm_eps, fused_qkv=fused,
                                   name=f"{name}.attn")
        self.post_attention_layernorm = make_norm()
        self.mlp = SwiGLU(dim, ffn_hidden, fused=fused) if mlp == "swiglu" else GELUMLP(dim, ffn_hidden)

    def forward(self, x: torch.Tensor, rope=None, cache: KVCache | None = None, layer: int = 0,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C) → (B, T, C)."""
        x = x + self.self_attn(self.input_layernorm(x), rope=rope, cache=cache, layer=layer, attn_mask=attn_mask)
        x = x + self.mlp(self.post_attention_layernorm(x))
        trace.record(f"{self.name}.out", x, "block output")
        return x
