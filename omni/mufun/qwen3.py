"""Qwen3, the decoder MuFun speaks with, from scratch on the project's shared blocks.

    ids (B, T) ──embed_tokens──▶ (B, T, 4096)   (or ready-made embeddings, e.g. text fused with audio)
        ──36 × Block: RMSNorm → GQA attention (32 q heads, 8 kv heads, head_dim 128,
                      per-head RMSNorm on q and k, then RoPE θ = 1e6) → RMSNorm → SwiGLU 12288
        ──norm──▶ hidden (B, T, 4096) ──lm_head (untied)──▶ logits (B, T, 151,936)

Numerics follow ``transformers``' ``modeling_qwen3.py``: RMSNorm in fp32 (eps
1e-6), q/k-norm before RoPE, no biases. The decoder contract of
:func:`omni.generation.generate.generate` (``forward(ids=|embeds=, cache=)``,
``embed``, ``cache_spec``) lets the project's sampler drive it; the KV cache is
an explicit :class:`~omni.nn.KVCache` passed in.

State-dict names are HF's minus the ``model.`` prefix (``layers.0.self_attn.q_proj.weight``,
``lm_head.weight``); see :data:`HF_PREFIX`.
"""

from __future__ import annotations


import torch
from torch import nn

from omni import trace
from omni.mufun.config import Qwen3Config
from omni.nn import Block, KVCache, RMSNorm, RotaryEmbedding, check_finite, check_ids
from omni.nn.cross_entropy import IGNORE_INDEX, shifted_cross_entropy
from omni.nn.init import init_normal

HF_PREFIX = "model."          # HF: model.embed_tokens, model.layers.*, model.norm; lm_head at the top


class Qwen3LM(nn.Module):
    def __init__(self, cfg: Qwen3Config, ctx_len: int | None = None):
        """ctx_len: the longest sequence generation will hold (sizes the KV cache); defaults to
        ``max_position_embeddings``. MuFun passes its 4096-token training length."""
        super().__init__()
        self.cfg = cfg
        self.ctx_len = ctx_len or cfg.max_position_embeddings
        if self.ctx_len > cfg.max_position_embeddings:
            raise ValueError(f"ctx_len {self.ctx_len} exceeds max_position_embeddings {cfg.max_position_embeddings}")
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.layers = nn.ModuleList(
            Block(cfg.hidden_size, cfg.n_heads, cfg.intermediate_size, n_kv_heads=cfg.n_kv_heads,
                  head_dim=cfg.head_dim, causal=True, norm="rms", mlp="swiglu", norm_eps=cfg.rms_norm_eps,
                  qk_norm=True, name=f"qwen3.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        if self.embed_tokens.weight.device.type != "meta":     # nothing to initialise in a dry run
            self.apply(init_normal)

    def cache_spec(self) -> tuple[int, int, int, int]:
        """(n_layers, n_kv_heads, head_dim, ctx_len) for :meth:`KVCache.for_model`."""
        c = self.cfg
        return c.n_layers, c.n_kv_heads, c.head_dim, self.ctx_len

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) → (B, T, hidden), after checking every id is in the vocabulary."""
        if ids.dim() != 2:
            raise ValueError(f"Qwen3LM expects ids of shape (B, T), got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"token ids must be int64/int32, got {ids.dtype}")
        check_ids(ids, self.cfg.vocab_size, hints={-200: "-200 is the <audio> placeholder: fuse audio first"})
        return self.embed_tokens(ids)

    @trace.stage("llm")
    def forward(self, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
                cache: KVCache | None = None, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) xor embeds (B, T, hidden) → logits (B, T, vocab).

        With ``cache`` the T new positions start at ``cache.length`` (RoPE too) and
        the cache advances by T. The loss is :meth:`logits_and_loss`.
        ``attention_mask`` (B, S), HF's convention (1 = token, 0 = padding) over all
        S = cached + new positions, keeps every token from attending to padding.
        """
        c = self.cfg
        if (ids is None) == (embeds is None):
            raise ValueError("Qwen3LM.forward takes exactly one of ids (B, T) or embeds (B, T, hidden)")
        if ids is not None:
            x = self.embed(ids)
        else:
            if embeds.dim() != 3 or embeds.shape[-1] != c.hidden_size:
                raise ValueError(f"embeds must be (B, T, {c.hidden_size}), got {tuple(embeds.shape)}")
            x = embeds
        B, T, _ = x.shape
        start = cache.length if cache is not None else 0
        if start + T > c.max_position_embeddings:
            raise ValueError(f"sequence of {start + T} tokens ({start} cached + {T} new) exceeds Qwen3's "
                             f"max_position_embeddings={c.max_position_embeddings}")
        mask = None if attention_mask is None else padding_mask(attention_mask, B, start, T)
        rope = self.rope(start, T, device=x.device)
        for i, block in enumerate(self.layers):
            x = block(x, rope=rope, cache=cache, layer=i, attn_mask=mask)         # (B, T, hidden)
        if cache is not None:
            cache.advance(T)
        h = self.norm(x)
        trace.record("llm.hidden", h, f"hidden states after {c.n_layers} layers + final RMSNorm")
        logits = self.lm_head(h)                                                # (B, T, V)
        trace.record("llm.logits", logits, "vocabulary logits")
        check_finite(logits, "Qwen3 logits")
        return logits

    def logits_and_loss(self, labels: torch.Tensor, ids: torch.Tensor | None = None,
                        embeds: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward`'s logits (B, T, vocab) and the next-token cross-entropy against ``labels`` (B, T),
        positions labelled -100 ignored (:func:`causal_lm_loss`)."""
        logits = self(ids, embeds, attention_mask=attention_mask)
        return logits, causal_lm_loss(logits, labels)


def padding_mask(attention_mask: torch.Tensor, B: int, start: int, T: int) -> torch.Tensor:
    """attention_mask (B, S) of 1/0 → boolean (B, 1, T, S), True = may attend (attention adds causality).

    A padding query (its outputs are never used) may attend everything, so that no row of
    the softmax is empty: an all-masked row would be NaN.
    """
    S = start + T
    if tuple(attention_mask.shape) != (B, S):
        raise ValueError(f"attention_mask must be (B, S) = ({B}, {S}) over {start} cached + {T} new positions, "
                         f"got {tuple(attention_mask.shape)}")
    keep = attention_mask.bool()
    return keep[:, None, None, :] | ~keep[:, None, start:, None]                 # (B, 1, T, S)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting labels[:, t+1] from logits[:, t]; -100 labels are skipped."""
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits (B, T) = {tuple(logits.shape[:2])}")
    if not bool((labels[:, 1:] != IGNORE_INDEX).any()):
        raise ValueError("every label is -100: nothing to learn from (check the prompt/answer masking)")
    loss = shifted_cross_entropy(logits, labels)
    check_finite(loss, "Qwen3 loss")
    return loss
