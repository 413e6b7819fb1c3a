"""TalkerTiny: the autoregressive transformer that speaks in RVQ codes (seed 004, Parts 5-6).

    text ids (B, N) ──text_emb──▶ (B, N, C) ┐
    codes (B, T, 2) ──Σ_k code_emb[k]──▶ (B, T, C) ┴─concat─▶ (B, N+T, C)
        ──4 × Block (causal, RoPE, RMSNorm, SwiGLU)──▶ norm ──▶ the T frame positions
        ──▶ base logits (B, T, 128), residual logits (B, T, 128), stop logit (B, T)

Input frame t is the previous frame (frame 0 is the all-zero start frame), so
position t predicts frame t (Part 6's shift right). Beyond the seed, whose
Talker ignores the text:

* **Text conditioning**: the text to speak comes first, as a prefix of
  embeddings from the Talker's own table over the BPE vocabulary (5000). Its own
  table, not Thinker hidden states, so the Talker trains and runs without a
  Thinker, and what it says depends only on the text it is given.
* **A stop head**: position t also predicts whether frame t is the last one;
  trained with the rest (:func:`talker_loss`). Generation stops there, or at
  the hard cap max(50, min(1000, 30 × text tokens)) of Part 5
  (:meth:`TalkerConfig.frame_cap`), whichever comes first.

The KV cache is the project's explicit :class:`~omni.nn.KVCache`: the first call
carries the text and the start frame, later calls one new frame each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.nn import Block, KVCache, RMSNorm, RotaryEmbedding, check_finite, check_ids
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.nn.init import init_normal


@dataclass
class TalkerConfig:
    codebook_size: int = 128        # = CodecConfig.codebook_size
    n_codebooks: int = 2            # = CodecConfig.n_codebooks: base + residual
    text_vocab_size: int = 5000     # the BPE vocabulary (the Talker's own embedding table)
    max_text_tokens: int = 64       # longest text prefix; longer text is an error
    min_frames: int = 50            # Part 5's cap: max(min_frames, min(max_frames, frames_per_token × N))
    max_frames: int = 1000
    frames_per_token: int = 30
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4                # head_dim 64
    ffn_hidden: int = 768
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    stop_weight: float = 1.0        # weight of the stop head's binary cross-entropy in the loss

    def __post_init__(self):
        assert self.n_codebooks == 2, f"TalkerTiny has a base and a residual head: n_codebooks must be 2, " \
                                      f"got {self.n_codebooks}"
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"
        assert (self.d_model // self.n_heads) % 2 == 0, "RoPE needs an even head_dim"
        assert 1 <= self.min_frames <= self.max_frames, \
            f"need 1 ≤ min_frames ≤ max_frames, got {self.min_frames}, {self.max_frames}"

    @property
    def ctx_len(self) -> int:
        """Longest sequence: the text, the start frame and max_frames generated frames."""
        return self.max_text_tokens + 1 + self.max_frames

    def frame_cap(self, n_text_tokens: int) -> int:
        """Part 5's hard limit on generated frames: 10 tokens → max(50, min(1000, 300)) = 300."""
        return max(self.min_frames, min(self.max_frames, self.frames_per_token * n_text_tokens))


class TalkerLogits(NamedTuple):
    base: torch.Tensor          # (B, T, codebook_size)
    residual: torch.Tensor      # (B, T, codebook_size)
    stop: torch.Tensor          # (B, T): > 0 means "frame t is the last"


class TalkerTiny(nn.Module):
    def __init__(self, cfg: TalkerConfig):
        super().__init__()
        self.cfg = cfg
        self.text_emb = nn.Embedding(cfg.text_vocab_size, cfg.d_model)
        self.code_emb = nn.ModuleList(nn.Embedding(cfg.codebook_size, cfg.d_model) for _ in range(cfg.n_codebooks))
        self.rope = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.rope_theta)
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, norm_eps=cfg.norm_eps,
                                          name=f"talker.layer{i}") for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.base_head = nn.Linear(cfg.d_model, cfg.codebook_size, bias=False)
        self.res_head = nn.Linear(cfg.d_model, cfg.codebook_size, bias=False)
        self.stop_head = nn.Linear(cfg.d_model, 1)
        self.apply(init_normal)

    def cache_spec(self) -> tuple[int, int, int, int]:
        """(n_layers, n_kv_heads, head_dim, ctx_len), what :meth:`KVCache.for_model` needs."""
        c = self.cfg
        return c.n_layers, c.n_heads, c.d_model // c.n_heads, c.ctx_len

    def check_text(self, text_ids: torch.Tensor) -> None:
        """Raise ValueError unless text_ids is (B, N) with 1 ≤ N ≤ max_text_tokens ids in the vocabulary."""
        if text_ids.dim() != 2:
            raise ValueError(f"TalkerTiny expects text ids (B, N), got {tuple(text_ids.shape)}")
        N = text_ids.shape[1]
        if N == 0:
            raise ValueError("the Talker got empty text: there is nothing to say")
        if N > self.cfg.max_text_tokens:
            raise ValueError(f"text of {N} tokens is longer than the Talker's limit of "
                             f"max_text_tokens={self.cfg.max_text_tokens}")
        check_ids(text_ids, self.cfg.text_vocab_size, "text token id")

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, T, K) → (B, T, C): one embedding per codebook, summed."""
        K, N = self.cfg.n_codebooks, self.cfg.codebook_size
        if codes.dim() != 3 or codes.shape[-1] != K:
            raise ValueError(f"TalkerTiny expects codes (B, T, {K}), got {tuple(codes.shape)}")
        check_ids(codes, N, "code", "the codebook")
        x = self.code_emb[0](codes[..., 0])
        for k in range(1, K):
            x = x + self.code_emb[k](codes[..., k])
        return x

    @trace.stage("talker")
    def forward(self, codes: torch.Tensor, text_ids: torch.Tensor | None = None,
                cache: KVCache | None = None, text_pad_mask: torch.Tensor | None = None) -> TalkerLogits:
        """codes (B, T, K) of the previous frames → TalkerLogits for the T frame positions.

        text_ids (B, N) is the prefix: required without a cache and on the first
        cached call, and refused once it is in the cache. text_pad_mask (B, N),
        True at padding, masks left-padded text in a batch (uncached only).
        """
        start = cache.length if cache is not None else 0
        text = None
        if start == 0:
            if text_ids is None:
                raise ValueError("TalkerTiny needs text_ids (B, N) on its first call: it speaks a given text")
            self.check_text(text_ids)
            if text_ids.shape[0] != codes.shape[0]:
                raise ValueError(f"text batch {text_ids.shape[0]} ≠ codes batch {codes.shape[0]}")
            text = self.text_emb(text_ids)                                            # (B, N, C)
            trace.record("talker.text_emb", text, "text prefix embeddings (the Talker's own table)")
        elif text_ids is not None:
            raise ValueError(f"text_ids given with a cache already holding {start} positions: "
                             f"the text goes in with the first call only")
        x = self.embed_codes(codes)                                                   # (B, T, C)
        trace.record("talker.codes", codes, "previous frames' codes (frame 0 = start)")
        trace.record("talker.code_emb", x, "Σ of one embedding per codebook")
        n_text = 0 if text is None else text.shape[1]
        if text is not None:
            x = torch.cat([text, x], dim=1)                                           # (B, N + T, C)
        B, L, _ = x.shape
        if start + L > self.cfg.ctx_len:
            raise ValueError(f"Talker sequence of {start + L} positions ({start} cached + {L} new) exceeds "
                             f"ctx_len={self.cfg.ctx_len}")
        mask = None
        if text_pad_mask is not None:
            if cache is not None or n_text == 0 or tuple(text_pad_mask.shape) != (B, n_text):
                raise ValueError(f"text_pad_mask must be (B, N) = {(B, n_text)} and is for uncached calls; "
                                 f"got {tuple(text_pad_mask.shape)}")
            keep = torch.ones(B, L, dtype=torch.bool, device=x.device)
            keep[:, :n_text] = ~text_pad_mask
            causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
            # (B, 1, L, L); each position may always see itself, so no row is fully masked
            mask = (causal & keep[:, None, :])[:, None] | torch.eye(L, dtype=torch.bool, device=x.device)
        trace.record("talker.input", x, "text prefix + frames")
        rope = self.rope(start, L, device=x.device)
        for i, block in enumerate(self.blocks):
            x = block(x, rope=rope, cache=cache, layer=i, attn_mask=mask)
        if cache is not None:
            cache.advance(L)
        h = self.norm(x[:, n_text:])                                                  # (B, T, C) frame positions
        out = TalkerLogits(self.base_head(h), self.res_head(h), self.stop_head(h).squeeze(-1))
        trace.record("talker.base_logits", out.base, "logits over codebook 0 (base)")
        trace.record("talker.res_logits", out.residual, "logits over codebook 1 (residual)")
        trace.record("talker.stop_logit", out.stop, "is this frame the last? (> 0 = yes)")
        check_finite(out.base, "Talker base logits")               # seed 004: base and residual separately
        check_finite(out.residual, "Talker residual logits")
        return out


def shift_codes(codes: torch.Tensor) -> torch.Tensor:
    """Part 6, Step 2: codes (B, T, K) → previous frames (B, T, K): roll right by one, frame 0 zeroed."""
    prev = torch.roll(codes, 1, dims=1)
    prev[:, 0, :] = 0
    return prev


@trace.stage("talker loss")
def talker_loss(talker: TalkerTiny, text_ids: torch.Tensor, codes: torch.Tensor,
                lengths: torch.Tensor | None = None, text_pad_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """Part 6's training objective on target codes (B, T, K) for text_ids (B, N).

    loss = CE(base) + CE(residual) + stop_weight · BCE(stop). lengths (B,) marks
    real frames in a right-padded batch (default: all T); the stop target is 1
    at frame lengths − 1, and padded frames are ignored.
    """
    B, T, K = codes.shape
    # a training loop may hand in its DistributedDataParallel wrapper: call it, read the config inside it
    cfg = (talker.module if isinstance(talker, nn.parallel.DistributedDataParallel) else talker).cfg
    V = cfg.codebook_size
    lengths = torch.full((B,), T, device=codes.device) if lengths is None else lengths
    if tuple(lengths.shape) != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise ValueError(f"lengths must be (B,) = ({B},) with values in [1, {T}], got {lengths.tolist()}")
    prev = shift_codes(codes)                                                         # (B, T, K)
    trace.record("talker.prev_codes", prev, "targets shifted right, frame 0 zeroed")
    out = talker(prev, text_ids=text_ids, text_pad_mask=text_pad_mask)
    valid = torch.arange(T, device=codes.device)[None, :] < lengths[:, None]           # (B, T)
    targets = codes.masked_fill(~valid[..., None], IGNORE_INDEX)                       # padding: ignored
    base_flat = out.base.reshape(-1, V)                                               # (B·T, V)
    res_flat = out.residual.reshape(-1, V)
    trace.record("talker.base_flat", base_flat, "base logits, flattened")
    trace.record("talker.res_flat", res_flat, "residual logits, flattened")
    trace.record("talker.base_target", targets[..., 0].reshape(-1), "base codebook targets")
    trace.record("talker.res_target", targets[..., 1].reshape(-1), "residual codebook targets")
    ce_base = F.cross_entropy(base_flat, targets[..., 0].reshape(-1), ignore_index=IGNORE_INDEX)
    ce_res = F.cross_entropy(res_flat, targets[..., 1].reshape(-1), ignore_index=IGNORE_INDEX)
    stop_target = (torch.arange(T, device=codes.device)[None, :] == (lengths[:, None] - 1)).float()
    bce = F.binary_cross_entropy_with_logits(out.stop[valid], stop_target[valid])
    loss = ce_base + ce_res + cfg.stop_weight * bce
    trace.record("talker.loss", loss, "CE(base) + CE(residual) + stop BCE")
    check_finite(loss, "Talker loss")
    metrics = {name: float(v.detach()) for name, v in
               (("loss", loss), ("ce_base", ce_base), ("ce_residual", ce_res), ("stop_bce", bce))}
    return loss, metrics
