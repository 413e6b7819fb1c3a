"""ViTTiny: a 224 × 224 image → one 128-d CLS embedding, plus 196 patch tokens (seed 004, Part 2).

    pixels (B, 3, 224, 224) ──Conv2d(3→128, 16×16, stride 16)──▶ (B, 128, 14, 14)
        ──rearrange "b d h w -> b (h w) d"──▶ (B, 196, 128) ──CLS prepended──▶ (B, 197, 128) ──+ learnable positions──▶
        ──4 × Block (bidirectional, LayerNorm, GELU MLP)──▶ LayerNorm ──▶ (B, 197, 128)
        ──▶ CLS (B, 1, 128)   and   patch tokens (B, 196, 128)

The Thinker sees the CLS only (one image token, after ``proj_v``); the patch
tokens are returned as well, for the many-token image path
(``OmniConfig.vision_tokens = "patches"``) and for probing.

``stem`` picks how pixels become the token grid: ``"patch"`` is the seed's
one Conv2d(P × P, stride P); ``"conv"`` is :class:`~omni.nn.conv_stem.ConvStem`,
log2(P) stride-2 3 × 3 convolutions with the same output grid (Xiao et al.
2021), which learns shapes at any offset faster on this project's scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from omni import trace
from omni.nn import Block, check_finite
from omni.nn.conv_stem import ConvStem

STEMS = ("patch", "conv")


@dataclass
class VisionConfig:
    image_size: int = 224
    patch_size: int = 16            # 224 / 16 = 14 patches a side, 196 in all
    in_channels: int = 3
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4                # head_dim = 128 / 4 = 32
    ffn_hidden: int = 512           # GELU MLP width, 4 · d_model
    norm_eps: float = 1e-6
    check_finite: bool = True       # raise on NaN/Inf CLS or patch tokens, as the seed documents
    stem: str = "patch"             # "patch": the seed's Conv2d(P×P, stride P); "conv": ConvStem (3×3 stride-2 stack)

    def __post_init__(self):
        assert self.image_size % self.patch_size == 0, \
            f"image_size {self.image_size} not divisible by patch_size {self.patch_size}"
        if self.stem not in STEMS:
            raise ValueError(f"VisionConfig.stem must be one of {STEMS}, got {self.stem!r}")
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"

    @property
    def grid(self) -> int:
        """Patches per side: 14."""
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        """N = 196."""
        return self.grid ** 2


def init_linear(module: nn.Linear, std: float = 0.02) -> None:
    """ViT's initialisation (timm, DeiT): weights from a normal of std 0.02 truncated at ±2σ, biases 0.

    PyTorch's default for nn.Linear (uniform ±1/√fan_in, std ≈ 0.051 at width 128) makes every
    residual branch of a fresh block as loud as the patch tokens it adds to. Measured on this
    project's scenes (docs/training.md), a shape head on a fresh ViTTiny's tokens (112 px, 16-pixel
    patches, conv stem) reached 38.4 / 54.4 % at steps 200 / 250 with the default and 80.9 / 94.6 %
    with this one.
    """
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class ViTTiny(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.stem == "conv":
            self.proj = ConvStem(cfg.in_channels, cfg.d_model, cfg.patch_size)
        else:
            self.proj = nn.Conv2d(cfg.in_channels, cfg.d_model, cfg.patch_size, stride=cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.d_model))
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, causal=False, norm="layer", mlp="gelu",
                  norm_eps=cfg.norm_eps, name=f"vision.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                init_linear(module)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 3, 224, 224), normalised → (cls (B, 1, d_model), patches (B, N, d_model))."""
        cfg = self.cfg
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        assert pixels.dim() == 4 and tuple(pixels.shape[1:]) == want, \
            f"ViTTiny expects pixels (B, {', '.join(map(str, want))}), got {tuple(pixels.shape)}"
        B = pixels.shape[0]
        trace.record("vision.pixels", pixels, "normalised RGB image")
        x = self.proj(pixels)                                                       # (B, C, 14, 14)
        trace.record("vision.patches", x, f"Conv2d {cfg.patch_size}×{cfg.patch_size} stride {cfg.patch_size}"
                     if cfg.stem == "patch" else f"ConvStem: {self.proj.n_down} × (3×3 stride 2)")
        x = rearrange(x, "b d h w -> b (h w) d")                                    # (B, N, C), N = h·w
        trace.record("vision.tokens", x, f"{cfg.grid}×{cfg.grid} patches as a sequence")
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1)                       # (B, 1 + N, C)
        trace.record("vision.with_cls", x, "CLS token prepended")
        x = x + self.pos                                                            # (B, 1 + N, C)
        trace.record("vision.pos", x, "+ learnable position embeddings")
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        cls, patches = x[:, :1], x[:, 1:]                                           # (B, 1, C), (B, N, C)
        trace.record("vision.cls", cls, "CLS token: the whole image")
        trace.record("vision.grid", patches, "patch tokens (not sent to the Thinker)")
        if cfg.check_finite:
            check_finite(cls, "ViTTiny CLS token")
            check_finite(patches, "ViTTiny patch tokens")
        return cls, patches
