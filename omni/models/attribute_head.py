"""AttributeHead: per-slot attribute logits read linearly from all the ViT's tokens (a probe that trains the ViT).

    image tokens (B, 1 + N, C) ──flatten──▶ (B, (1 + N)·C) ──Linear──▶ (B, slots, Σ classes)

For the synthetic scenes a slot is a column (left, middle, right) and the
attributes are the shape, colour and size of the object in it (each with a
"none" class for an empty column), so the head asks the ViT exactly what the
questions will: which shape is where. It is an auxiliary objective of the
vision stage (``data.attribute_weight``), never used by the omni model: only
ViTTiny is kept. One linear map of the token grid keeps it a probe — the ViT
must make the attribute linearly readable at its position.
"""

from __future__ import annotations

import torch
from torch import nn


class AttributeHead(nn.Module):
    def __init__(self, n_tokens: int, d_in: int, slots: int, classes: tuple[int, ...]):
        super().__init__()
        assert slots >= 1 and classes and min(classes) >= 2, \
            f"AttributeHead needs ≥ 1 slot and ≥ 2 classes per attribute, got slots {slots}, classes {classes}"
        self.n_tokens, self.slots, self.classes = n_tokens, slots, tuple(classes)
        self.proj = nn.Linear(n_tokens * d_in, slots * sum(classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + N, C) → logits (B, slots, Σ classes); attribute k is columns offsets[k]:offsets[k+1]."""
        B, T, _ = tokens.shape
        assert T == self.n_tokens, f"AttributeHead expects {self.n_tokens} tokens, got {T}"
        return self.proj(tokens.flatten(1)).view(B, self.slots, sum(self.classes))

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """(B, slots, Σ classes) → one (B, slots, classes[k]) tensor per attribute."""
        return list(torch.split(logits, self.classes, dim=-1))
