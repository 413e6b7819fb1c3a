"""ThinkerLM: the tiny decoder-only language model at the centre of μOmni (seed 004, Part 1).

    ids (B, T) ──tok_emb──▶ (B, T, 256) ──4 × Block (RoPE, RMSNorm, SwiGLU)──▶ (B, T, 256)
        ──norm──▶ lm_head ──▶ logits (B, T, 5000)

Either token ids or ready-made embeddings (B, T, 256) go in, never both: the
multimodal model feeds image/audio embeddings concatenated with text embeddings.
A :class:`~omni.nn.KVCache` passed into ``forward`` makes decoding incremental;
RoPE positions continue from ``cache.length``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omni import trace
from omni.nn import Block, KVCache, RMSNorm, RotaryEmbedding, check_finite, check_ids
from omni.nn.fast_decode import FastDecoder
from omni.nn.init import init_normal


@dataclass
class ThinkerConfig:
    vocab_size: int = 5000
    ctx_len: int = 512              # longest sequence (prompt + generated), in tokens
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4                # head_dim = d_model / n_heads = 64
    n_kv_heads: int | None = None   # < n_heads turns on grouped-query attention
    ffn_hidden: int = 768           # SwiGLU width, ≈ 8/3 · d_model rounded up to a multiple of 64
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = True     # lm_head shares tok_emb's weight
    check_finite: bool = True       # raise on NaN/Inf logits, as the seed documents

    def __post_init__(self):
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"
        kv = self.n_kv_heads or self.n_heads
        assert self.n_heads % kv == 0, f"n_heads {self.n_heads} not a multiple of n_kv_heads {kv}"
        assert (self.d_model // self.n_heads) % 2 == 0, "RoPE needs an even head_dim"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class ThinkerLM(nn.Module):
    def __init__(self, cfg: ThinkerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, n_kv_heads=cfg.n_kv_heads, norm_eps=cfg.norm_eps,
                  fused=True, name=f"thinker.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.apply(init_normal)

    def cache_spec(self) -> tuple[int, int, int, int]:
        """(n_layers, n_kv_heads, head_dim, ctx_len), what :meth:`KVCache.for_model` needs."""
        c = self.cfg
        return c.n_layers, c.n_kv_heads or c.n_heads, c.head_dim, c.ctx_len

    def fast_decoder(self) -> FastDecoder:
        """An inference-only snapshot of the weights for one-token decode steps (omni.nn.fast_decode)."""
        return FastDecoder(self.tok_emb.weight, self.rope, self.blocks, self.norm, self.lm_head.weight,
                           self.cfg.ctx_len, check_logits=self.cfg.check_finite)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) → embeddings (B, T, d_model), after checking every id is in the vocabulary."""
        if ids.dim() != 2:
            raise ValueError(f"ThinkerLM expects ids of shape (B, T), got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"token ids must be int64/int32, got {ids.dtype}")
        check_ids(ids, self.cfg.vocab_size)
        return self.tok_emb(ids)

    @trace.stage("thinker")
    def hidden_states(self, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
                      cache: KVCache | None = None) -> torch.Tensor:
        """ids (B, T) xor embeds (B, T, d_model) → final-norm hidden states (B, T, d_model).

        With ``cache``, the T new positions start at ``cache.length`` and the
        cache is advanced by T. :meth:`forward` applies the head to all of them;
        a loss that needs only a few positions (the SFT answers) applies
        ``lm_head`` to those alone.
        """
        if (ids is None) == (embeds is None):
            raise ValueError("ThinkerLM.forward takes exactly one of ids (B, T) or embeds (B, T, d_model)")
        if ids is not None:
            trace.record("thinker.ids", ids, "token ids")
            x = self.embed(ids)
        else:
            if embeds.dim() != 3 or embeds.shape[-1] != self.cfg.d_model:
                raise ValueError(f"embeds must be (B, T, {self.cfg.d_model}), got {tuple(embeds.shape)}")
            x = embeds
        B, T, _ = x.shape
        start = cache.length if cache is not None else 0
        if start + T > self.cfg.ctx_len:
            raise ValueError(f"sequence of {start + T} tokens ({start} cached + {T} new) exceeds "
                             f"ctx_len={self.cfg.ctx_len}")
        trace.record("thinker.embed", x, "token embeddings")
        rope = self.rope(start, T, device=x.device)
        for i, block in enumerate(self.blocks):
            x = block(x, rope=rope, cache=cache, layer=i)
        if cache is not None:
            cache.advance(T)
        h = self.norm(x)
        trace.record("thinker.norm", h, "final RMSNorm")
        return h

    @trace.stage("thinker")
    def forward(self, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """ids (B, T) xor embeds (B, T, d_model) → logits (B, T, vocab_size).

        With ``cache``, the T new positions start at ``cache.length`` and the
        cache is advanced by T. The final-norm hidden states are :meth:`hidden_states`;
        the training loss, which never materialises these logits, is
        :class:`omni.training.lm.NextTokenLoss`.
        """
        h = self.hidden_states(ids, embeds, cache)
        logits = self.lm_head(h)
        trace.record("thinker.logits", logits, "vocabulary logits")
        if self.cfg.check_finite:
            check_finite(logits, "ThinkerLM logits")
        return logits
