"""CaptionDecoder: a small causal transformer that writes the caption from the image tokens (CoCa's second loss).

    image tokens (B, N, C_v) ──image_in──▶ (B, N, C)  ┐
    ids (B, L) = BOS w₁ … EOS ──tok_emb──▶ (B, L, C)  ┴─cat─▶ (B, N + L, C) + learnt positions
        ──causal blocks──▶ LayerNorm ──head──▶ logits (B, L - 1, V): position N + t predicts ids[t + 1]

Contrastive training alone never has to name what it sees: in a batch of 64
random scenes a caption is found by its colours and sizes, so a probe reads the
left object's colour from the ViT at 99.5 % but its shape at 38.9 % (chance
16.7 %). A captioner must predict every word, so every shape of every column is
a target at every step (Yu et al. 2022, CoCa: contrastive + captioning). The
decoder reads every image token (the CLS and the N patches), so it learns from
where in the picture each word comes; only ViTTiny is kept by the omni model.

Image tokens see each other causally (the CLS first); that costs nothing here,
since every caption position sees all N of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from omni.nn import Block


@dataclass
class CaptionDecoderConfig:
    n_layers: int = 0               # 0: no caption decoder (the seed's contrastive-only stage)
    n_heads: int = 4
    ffn_hidden: int = 512
    norm_eps: float = 1e-6

    def __post_init__(self):
        assert self.n_layers >= 0, f"CaptionDecoderConfig.n_layers must be ≥ 0, got {self.n_layers}"


class CaptionDecoder(nn.Module):
    def __init__(self, cfg: CaptionDecoderConfig, vision_dim: int, d_model: int, vocab_size: int,
                 n_image_tokens: int, ctx_len: int):
        super().__init__()
        assert cfg.n_layers > 0, "a CaptionDecoder needs n_layers ≥ 1"
        assert d_model % cfg.n_heads == 0, f"d_model {d_model} not divisible by n_heads {cfg.n_heads}"
        self.n_image_tokens, self.ctx_len = n_image_tokens, ctx_len
        self.image_in = nn.Linear(vision_dim, d_model)
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Parameter(torch.zeros(1, n_image_tokens + ctx_len, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            Block(d_model, cfg.n_heads, cfg.ffn_hidden, causal=True, norm="layer", mlp="gelu",
                  norm_eps=cfg.norm_eps, name=f"caption.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d_model, eps=cfg.norm_eps)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, image_tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """image tokens (B, N, C_v), caption ids (B, L) → next-token logits (B, L - 1, V) for ids[:, 1:]."""
        B, N, _ = image_tokens.shape
        assert N == self.n_image_tokens, f"CaptionDecoder expects {self.n_image_tokens} image tokens, got {N}"
        assert ids.dim() == 2 and ids.shape[0] == B and 2 <= ids.shape[1] <= self.ctx_len, \
            f"CaptionDecoder expects ids (B={B}, 2 ≤ L ≤ {self.ctx_len}), got {tuple(ids.shape)}"
        L = ids.shape[1]
        x = torch.cat([self.image_in(image_tokens), self.tok_emb(ids)], dim=1) + self.pos[:, :N + L]  # (B, N+L, C)
        for block in self.blocks:
            x = block(x)
        h = self.norm(x[:, N:N + L - 1])                                             # (B, L - 1, C)
        return self.head(h)                                                          # (B, L - 1, V)
