"""SoundAttributeHead: what a clip plays (instrument, kind, tempo, loudness, note, chord/direction), read from the audio encoder.

    frames (B, T', C), lengths (B,) ──mean and max over the valid frames──▶ (B, 2C)
        ──Linear──▶ logits (B, Σ classes); attribute k is columns offsets[k]:offsets[k+1]

An auxiliary objective of the audio stage (``data.sound_weight``): the ASR
stage teaches AudioEncoderTiny speech only, so on the world's music clips its
features carry little of what the audio questions ask (measured: "what chord is
playing?" 19.7 %, "what note is playing?" 50.9 % after the omni SFT). The head
asks the encoder for exactly those attributes on the sound clips, the way the
vision stage's :class:`~omni.models.attribute_head.AttributeHead` asks the ViT
for shapes. Only the encoder is kept for the omni model; the head is dropped.
One linear map of pooled features keeps it a probe: the encoder must make the
attribute readable.
"""

from __future__ import annotations

import torch
from torch import nn


class SoundAttributeHead(nn.Module):
    def __init__(self, d_in: int, classes: tuple[int, ...]):
        super().__init__()
        assert classes and min(classes) >= 2, f"SoundAttributeHead needs ≥ 2 classes per attribute, got {classes}"
        self.classes = tuple(classes)
        self.proj = nn.Linear(2 * d_in, sum(classes))

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """frames (B, T', C), lengths (B,) valid frames per clip → logits (B, Σ classes)."""
        B, T, C = frames.shape
        assert lengths.shape == (B,) and int(lengths.min()) >= 1, \
            f"lengths must be (B,) = ({B},) with every clip ≥ 1 frame, got {tuple(lengths.shape)}"
        valid = torch.arange(T, device=frames.device)[None, :] < lengths[:, None]      # (B, T')
        mean = (frames * valid[..., None]).sum(1) / lengths[:, None].to(frames.dtype)  # (B, C)
        peak = frames.masked_fill(~valid[..., None], float("-inf")).amax(1)           # (B, C)
        return self.proj(torch.cat([mean, peak], dim=-1))                              # (B, Σ classes)

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """(B, Σ classes) → one (B, classes[k]) tensor per attribute."""
        return list(torch.split(logits, self.classes, dim=-1))
