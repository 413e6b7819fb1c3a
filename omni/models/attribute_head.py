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


READOUTS = ("flat", "tokens")


def column_pool(grid: int, slots: int) -> torch.Tensor:
    """(slots, grid²): row s averages the patch tokens whose centre lies in column s (raster order)."""
    if grid < slots:
        raise ValueError(f"a {grid} × {grid} patch grid cannot give each of {slots} columns its own patches")
    col = ((torch.arange(grid) + 0.5) / grid * slots).floor().long()             # patch column → slot
    member = (col[None, :] == torch.arange(slots)[:, None]).float()              # (slots, grid)
    member = member[:, None, :].expand(slots, grid, grid).reshape(slots, grid * grid)   # same for every row
    return member / member.sum(dim=1, keepdim=True)


class AttributeHead(nn.Module):
    """``readout="flat"``: one Linear over all flattened tokens (above). ``readout="tokens"``: one Linear
    shared by every patch token, its logits averaged over the patches of each column — the ViT must then
    make each object's attributes readable, the same way at every position, in the patches of its column
    (what a question-dependent attention in the Thinker reads)."""

    def __init__(self, n_tokens: int, d_in: int, slots: int, classes: tuple[int, ...], readout: str = "flat"):
        super().__init__()
        assert slots >= 1 and classes and min(classes) >= 2, \
            f"AttributeHead needs ≥ 1 slot and ≥ 2 classes per attribute, got slots {slots}, classes {classes}"
        if readout not in READOUTS:
            raise ValueError(f"AttributeHead readout must be one of {READOUTS}, got {readout!r}")
        self.n_tokens, self.slots, self.classes, self.readout = n_tokens, slots, tuple(classes), readout
        if readout == "flat":
            self.proj = nn.Linear(n_tokens * d_in, slots * sum(classes))
        else:
            grid = round((n_tokens - 1) ** 0.5)
            assert grid * grid == n_tokens - 1, f"readout 'tokens' needs 1 + a square grid of tokens, got {n_tokens}"
            self.proj = nn.Linear(d_in, sum(classes))
            self.register_buffer("pool", column_pool(grid, slots), persistent=False)   # (slots, N)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + N, C) → logits (B, slots, Σ classes); attribute k is columns offsets[k]:offsets[k+1]."""
        B, T, _ = tokens.shape
        assert T == self.n_tokens, f"AttributeHead expects {self.n_tokens} tokens, got {T}"
        if self.readout == "flat":
            return self.proj(tokens.flatten(1)).view(B, self.slots, sum(self.classes))
        per_patch = self.proj(tokens[:, 1:])                                        # (B, N, Σ classes)
        return torch.einsum("sn,bnc->bsc", self.pool.to(per_patch.dtype), per_patch)  # (B, slots, Σ classes)

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """(B, slots, Σ classes) → one (B, slots, classes[k]) tensor per attribute."""
        return list(torch.split(logits, self.classes, dim=-1))
