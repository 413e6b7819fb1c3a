"""ContrastiveModel: ViTTiny and a small text tower trained CLIP-style on image–caption pairs (stage 3).

    pixels (B, 3, 224, 224) ──ViTTiny──▶ CLS (B, 1, 128) ──image_proj──▶ (B, E) ──L2-normalise──▶ img (B, E)
    ids (B, L), PAD 0 ──TextTower──▶ pooled (B, 128)     ──text_proj───▶ (B, E) ──L2-normalise──▶ txt (B, E)
    logits_per_image (B, B) = exp(logit_scale) · img @ txtᵀ      row i: image i against every caption
    optional: CLS + patches (B, 1 + N, 128) ──CaptionDecoder──▶ caption logits (B, L - 1, V)   (CoCa)

Training (``omni.training.contrastive.info_nce``) asks row i to pick caption
i and column j to pick image j: the InfoNCE loss in both directions, as CLIP
(Radford et al. 2021) does.

The temperature τ is learnt as ``logit_scale = log(1 / τ)``, starting at
τ = 0.07 (logit scale ≈ 2.659, i.e. similarities × 14.3) and, as in CLIP,
clamped so the scale never exceeds 100 (``logit_scale ≤ ln 100 ≈ 4.605``):
without the clamp the loss can lower itself by sharpening forever, which
destabilises training. The clamp sits in :meth:`ContrastiveModel.scale`, so the
checkpoint holds the raw parameter and every forward applies the same rule.

The text tower reads the shared BPE tokenizer (the Thinker's): token + learnt
position embeddings, bidirectional pre-norm blocks with a padding mask, a final
LayerNorm and the mean over the caption's tokens (pads excluded). It is small on
purpose: captions of this world are short and their grammar is simple.

With ``caption.n_layers > 0`` the model also has a :class:`CaptionDecoder`
that writes each caption from the ViT's tokens (CoCa, Yu et al. 2022), so the
ViT must name every shape; with ``attribute_slots > 0`` an
:class:`AttributeHead` reads each column's shape, colour and size from the
tokens. ``forward`` returns every output in a :class:`ContrastiveOutput`
(``caption_logits`` / ``attribute_logits`` None without their head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.models.attribute_head import AttributeHead
from omni.models.caption_decoder import CaptionDecoder, CaptionDecoderConfig
from omni.models.vision import VisionConfig, ViTTiny
from omni.nn import Block, check_finite
from omni.tokenizer import PAD_ID

MAX_LOGIT_SCALE = math.log(100.0)      # CLIP's clamp: similarities are scaled by at most 100


@dataclass
class TextTowerConfig:
    vocab_size: int = 5000          # the shared BPE tokenizer's vocabulary (an upper bound on its pieces)
    ctx_len: int = 64               # longest caption in tokens, BOS and EOS included
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ffn_hidden: int = 512
    norm_eps: float = 1e-6

    def __post_init__(self):
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"


@dataclass
class ContrastiveConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    embed_dim: int = 128            # E: the shared space both towers project into
    init_temperature: float = 0.07  # τ at the start; logit_scale = log(1 / τ) is learnt
    caption: CaptionDecoderConfig = field(default_factory=CaptionDecoderConfig)   # n_layers 0: none (the seed)
    attribute_slots: int = 0        # > 0: an AttributeHead with this many slots (columns) …
    attribute_classes: list[int] = field(default_factory=list)   # … and these class counts per attribute
    attribute_readout: str = "flat"   # "flat": one Linear over all tokens; "tokens": shared per patch, column-averaged

    def __post_init__(self):
        if isinstance(self.vision, dict):          # from config.json / a preset: Config(**d) rejects unknown keys
            self.vision = VisionConfig(**self.vision)
        if isinstance(self.text, dict):
            self.text = TextTowerConfig(**self.text)
        if isinstance(self.caption, dict):
            self.caption = CaptionDecoderConfig(**self.caption)
        if not 0 < self.init_temperature <= 1:
            raise ValueError(f"ContrastiveConfig.init_temperature must be in (0, 1], got {self.init_temperature}")
        if bool(self.attribute_slots) != bool(self.attribute_classes):
            raise ValueError(f"ContrastiveConfig: attribute_slots {self.attribute_slots} and attribute_classes "
                             f"{self.attribute_classes} must be set together (both empty: no attribute head)")
        if math.log(1 / self.init_temperature) > MAX_LOGIT_SCALE:
            raise ValueError(f"init_temperature {self.init_temperature} gives a logit scale above the clamp "
                             f"ln 100; use τ ≥ 0.01")


class TextTower(nn.Module):
    def __init__(self, cfg: TextTowerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, cfg.ctx_len, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, causal=False, norm="layer", mlp="gelu",
                  norm_eps=cfg.norm_eps, name=f"text.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) right-padded with PAD_ID → pooled caption vectors (B, d_model)."""
        cfg = self.cfg
        assert ids.dim() == 2 and ids.shape[1] <= cfg.ctx_len, \
            f"TextTower expects ids (B, L ≤ {cfg.ctx_len}), got {tuple(ids.shape)}"
        valid = ids != PAD_ID                                                        # (B, L)
        if not bool(valid.any(dim=1).all()):
            raise ValueError("TextTower got a caption with no tokens (a row of only PAD_ID)")
        L = ids.shape[1]
        x = self.tok_emb(ids) + self.pos[:, :L]                                      # (B, L, C)
        trace.record("text.embed", x, "token + position embeddings")
        attn_mask = valid[:, None, None, :]                                          # (B, 1, 1, L): keys
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        x = self.norm(x)
        w = valid[:, :, None].to(x.dtype)                                            # (B, L, 1)
        pooled = (x * w).sum(dim=1) / w.sum(dim=1)                                   # (B, C): mean over tokens
        trace.record("text.pooled", pooled, "mean over the caption's tokens")
        return pooled


class ContrastiveOutput(NamedTuple):
    logits: torch.Tensor                        # logits_per_image (B, B [+ N])
    caption_logits: torch.Tensor | None         # (B, L - 1, V) next-token logits, or None without a decoder
    attribute_logits: torch.Tensor | None = None   # (B, slots, Σ classes), or None without an attribute head


class ContrastiveModel(nn.Module):
    def __init__(self, cfg: ContrastiveConfig):
        super().__init__()
        self.cfg = cfg
        self.vision = ViTTiny(cfg.vision)
        self.text = TextTower(cfg.text)
        self.image_proj = nn.Linear(cfg.vision.d_model, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text.d_model, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))
        self.caption_decoder = CaptionDecoder(cfg.caption, cfg.vision.d_model, cfg.text.d_model,
                                              cfg.text.vocab_size, 1 + cfg.vision.n_patches, cfg.text.ctx_len) \
            if cfg.caption.n_layers else None
        self.attribute_head = AttributeHead(1 + cfg.vision.n_patches, cfg.vision.d_model, cfg.attribute_slots,
                                            tuple(cfg.attribute_classes), cfg.attribute_readout) \
            if cfg.attribute_slots else None

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) with CLIP's clamp at 100; 1 / scale is the temperature τ."""
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def image_embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, H, W) → unit-length image embeddings (B, E)."""
        cls, _ = self.vision(pixels)                                                 # (B, 1, C)
        return self._embed_cls(cls)

    def _embed_cls(self, cls: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.image_proj(cls[:, 0]).float(), dim=-1)                  # (B, E)
        trace.record("contrastive.image", z, "projected, L2-normalised image embedding")
        return z

    def text_embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) → unit-length caption embeddings (B, E)."""
        z = F.normalize(self.text_proj(self.text(ids)).float(), dim=-1)              # (B, E)
        trace.record("contrastive.text", z, "projected, L2-normalised caption embedding")
        return z

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor,
                neg_ids: torch.Tensor | None = None) -> ContrastiveOutput:
        """(pixels (B, 3, H, W), ids (B, L)) → logits_per_image (B, B) (its transpose is logits_per_text)
        and, with a caption decoder, the next-token logits of each caption (B, L - 1, V).

        With hard-negative captions ``neg_ids`` (N, L'), each image is also scored
        against them: logits (B, B + N), the first B columns the batch's captions.
        """
        cls, patches = self.vision(pixels)                                           # (B, 1, C), (B, N, C)
        img, txt = self._embed_cls(cls), self.text_embed(ids)
        if neg_ids is not None:
            txt = torch.cat([txt, self.text_embed(neg_ids)])                        # (B + N, E)
        logits = self.scale() * img @ txt.T                                          # (B, B [+ N])
        check_finite(logits, "ContrastiveModel similarity logits")
        tokens = torch.cat([cls, patches], dim=1)                                    # (B, 1 + N, C)
        caption_logits = self.caption_decoder(tokens, ids) if self.caption_decoder is not None else None
        attribute_logits = self.attribute_head(tokens) if self.attribute_head is not None else None
        return ContrastiveOutput(logits, caption_logits, attribute_logits)
