"""Weight initialisation shared by the decoders trained from scratch (GPT-2's)."""

from torch import nn


def init_normal(m: nn.Module, std: float = 0.02) -> None:
    """Linear and Embedding weights ~ N(0, std²), biases zero; use as ``model.apply(init_normal)``."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, mean=0.0, std=std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
