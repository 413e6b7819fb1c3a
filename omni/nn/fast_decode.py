"""The optional fast decode step: one token per row through a decoder's blocks, with its weights laid out
for vector × matrix products. Inference only; the eager modules stay the default and the reference.

A decode step at batch 1 multiplies a single row by every weight matrix once. ``nn.Linear`` stores a
weight as (out, in) and computes ``x @ W.T``; for one row that is a matrix × vector product over
rows of ``W``. With the weight stored transposed, (in, out) contiguous, the same product streams
through memory in order, and on one CPU core it took 0.5–0.8× the time (a 256 × 1536 SwiGLU
projection: 26 µs against 56 µs; the 256 × 5000 head: 270 µs against 350–420 µs). The rest of an
eager step is per-operator and per-module overhead: eager ``Block`` s make ~30 tensor operations
and ~10 module calls per layer, this step ~14 operations and no module calls.

:class:`FastDecoder` takes a snapshot of the weights when it is built (``model.fast_decoder()``):

    qkv  (C, (H + 2·Hkv)·D)   q, k, v projections side by side (fused here if the block keeps them apart)
    o    (H·D, C)
    gate_up (C, 2·F)          gate and up side by side
    down (F, C)
    head (C, V)

so ``x @ qkv`` is the block's ``qkv_proj(x)``. The snapshot is inference only: weights changed after it
was built are not seen (``generate(..., fast=True)`` builds one per call). fp32 only; tests/test_fast_decode.py
shows its logits equal the eager model's (fp32, 1e-5) and its greedy tokens equal eager generation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omni.nn.block import Block
from omni.nn.checks import check_finite
from omni.nn.kv_cache import KVCache
from omni.nn.mlp import SwiGLU
from omni.nn.norm import RMSNorm
from omni.nn.rope import RotaryEmbedding


def _transposed(*weights: torch.Tensor) -> torch.Tensor:
    """(out_i, in) weights of nn.Linear → one contiguous (in, Σ out_i): ``x @ W`` = the linears side by side."""
    return torch.cat(weights, dim=0).t().contiguous()


class _Layer:
    """One Block's weights for the decode step (see the module docstring for the layouts)."""

    def __init__(self, block: Block):
        attn, mlp = block.self_attn, block.mlp
        if not (isinstance(block.input_layernorm, RMSNorm) and isinstance(mlp, SwiGLU)):
            raise ValueError("FastDecoder supports RMSNorm + SwiGLU blocks (Llama/Qwen), got "
                             f"{type(block.input_layernorm).__name__} + {type(mlp).__name__}")
        linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
        if any(m.bias is not None for m in linears) or not attn.causal:
            raise ValueError("FastDecoder supports causal blocks without biases")
        self.n1, self.n2 = block.input_layernorm.weight.detach(), block.post_attention_layernorm.weight.detach()
        self.eps = block.input_layernorm.eps
        self.q_norm = attn.q_norm.weight.detach() if attn.q_norm is not None else None
        self.k_norm = attn.k_norm.weight.detach() if attn.k_norm is not None else None
        qkv = [attn.qkv_proj.weight] if attn.fused_qkv else [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]
        gate_up = [mlp.gate_up_proj.weight] if mlp.fused else [mlp.gate_proj.weight, mlp.up_proj.weight]
        with torch.no_grad():
            self.qkv = _transposed(*qkv)                                   # (C, (H + 2Hkv)·D)
            self.o = _transposed(attn.o_proj.weight)                       # (H·D, C)
            self.gate_up = _transposed(*gate_up)                           # (C, 2F)
            self.down = _transposed(mlp.down_proj.weight)                  # (F, C)


class FastDecoder:
    """Decode steps of a decoder made of :class:`Block` s: ``step(ids (B,), cache) → logits (B, V)``.

    Equal to ``model(ids[:, None], cache=cache)[:, -1]`` (fp32, 1e-5; tests/test_fast_decode.py).
    """

    def __init__(self, embedding: torch.Tensor, rope: RotaryEmbedding, blocks, norm: RMSNorm,
                 head: torch.Tensor, ctx_len: int, check_logits: bool = True):
        if embedding.dtype != torch.float32:
            raise ValueError(f"FastDecoder is fp32 only, the model is {embedding.dtype}; use the eager path")
        attn = blocks[0].self_attn
        self.H, self.Hkv, self.D = attn.n_heads, attn.n_kv_heads, attn.head_dim
        self.embedding = embedding.detach()                                # (V, C)
        self.layers = [_Layer(b) for b in blocks]
        self.norm, self.eps = norm.weight.detach(), norm.eps
        with torch.no_grad():
            self.head = head.detach().t().contiguous()                     # (C, V)
        self.cos, self.sin = rope(0, ctx_len, device=embedding.device)     # (ctx_len, D), sin signed (omni.nn.rope)
        self.check_logits = check_logits

    @torch.inference_mode()
    def step(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """ids (B,) at position ``cache.length`` → logits (B, V); writes k, v into ``cache`` and advances it."""
        B, (H, Hkv, D), pos = ids.shape[0], (self.H, self.Hkv, self.D), cache.length
        if pos >= cache.max_len:
            raise ValueError(f"KVCache holds {cache.max_len} positions, all filled")
        if torch.is_autocast_enabled(ids.device.type):
            raise ValueError("FastDecoder is fp32 only: leave autocast (--dtype fp32) or use the eager path")
        cos, sin = self.cos[pos], self.sin[pos]                            # (D,) each
        x = self.embedding[ids]                                            # (B, C)
        for i, L in enumerate(self.layers):
            h = F.rms_norm(x, L.n1.shape, L.n1, L.eps)
            qkv = (h @ L.qkv).view(B, H + 2 * Hkv, D)                      # (B, H+2Hkv, D): q heads, k heads, v heads
            qk, v = qkv[:, :H + Hkv], qkv[:, H + Hkv:]
            if L.q_norm is not None:                                       # Qwen3: per-head RMSNorm before RoPE
                qk = torch.cat([F.rms_norm(qk[:, :H], L.q_norm.shape, L.q_norm, L.eps),
                                F.rms_norm(qk[:, H:], L.k_norm.shape, L.k_norm, L.eps)], dim=1)
            qk = torch.addcmul(qk * cos, qk.roll(D // 2, dims=-1), sin)    # RoPE at pos, q and k at once
            k_cache, v_cache = cache.k[i], cache.v[i]                      # (B, Hkv, S, D) each
            k_cache[:, :, pos] = qk[:, H:]                                 # this position's k, v (B, Hkv, D)
            v_cache[:, :, pos] = v
            k, v = k_cache[:, :, :pos + 1], v_cache[:, :, :pos + 1]        # (B, Hkv, pos + 1, D)
            if Hkv != H:                                                   # grouped-query attention
                k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
            y = F.scaled_dot_product_attention(qk[:, :H, None], k, v)     # (B, H, 1, D)
            x = torch.addmm(x, y.view(B, H * D), L.o)                      # x + y @ o: (B, C)
            gate, up = (F.rms_norm(x, L.n2.shape, L.n2, L.eps) @ L.gate_up).chunk(2, dim=-1)   # (B, F) each
            x = torch.addmm(x, F.silu(gate).mul_(up), L.down)              # x + (silu(gate) · up) @ down
        cache.advance(1)
        return self.logits(F.rms_norm(x, self.norm.shape, self.norm, self.eps))

    @torch.inference_mode()
    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states h (B, C) → logits (B, V) (the prefill's last position, too)."""
        logits = h @ self.head                                             # (B, V)
        if self.check_logits:
            check_finite(logits, "FastDecoder logits")
        return logits
