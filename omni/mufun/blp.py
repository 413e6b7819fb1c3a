"""BLP_4i_2x, MuFun's connector from Whisper features to the decoder's embedding space (seed 003).

    features (B, N, 5120) ──linear1──▶ (B, N, 10240) ──GELU (exact erf)──▶ ──linear2──▶ (B, N, LLM hidden)

"4i": the input is 4 Whisper hidden states concatenated (4 × 1280 = 5120);
"2x": the middle layer is twice as wide (10240). Parameters:
5120·10240 + 10240 + 10240·H + H, i.e. 94,386,176 for Qwen3-8B (H = 4096) and
89,142,784 for the documents' H = 3584.

Names ``linear1``/``linear2`` are MuFun's (``connector._connector.linear1``), so
a MuFun connector state dict loads after stripping its prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.mufun.config import ConnectorConfig


class BLPConnector(nn.Module):
    def __init__(self, cfg: ConnectorConfig):
        super().__init__()
        self.cfg = cfg
        self.linear1 = nn.Linear(cfg.in_dim, cfg.hidden_dim)
        self.linear2 = nn.Linear(cfg.hidden_dim, cfg.llm_dim)

    @trace.stage("connector")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., N, in_dim) → (..., N, llm_dim)."""
        assert x.shape[-1] == self.cfg.in_dim, \
            f"BLP connector expects features (..., {self.cfg.in_dim}), got {tuple(x.shape)}"
        h = self.linear1(x)                                                 # (..., N, hidden_dim)
        trace.record("connector.linear1", h, f"Linear 1: {self.cfg.in_dim} → {self.cfg.hidden_dim}")
        h = F.gelu(h)
        trace.record("connector.gelu", h, "GELU (exact), shape unchanged")
        y = self.linear2(h)                                                 # (..., N, llm_dim)
        trace.record("connector.linear2", y, f"Linear 2: {self.cfg.hidden_dim} → {self.cfg.llm_dim} (decoder width)")
        return y
