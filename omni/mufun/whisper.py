"""The Whisper encoder, from scratch (openai/whisper ``AudioEncoder``; HF ``WhisperEncoder``).

    mel (B, F, 3000) ──conv1 k3 s1 + GELU──▶ (B, 1280, 3000) ──conv2 k3 s2 + GELU──▶ (B, 1280, 1500)
        ──transpose + sinusoidal positions──▶ hidden_states[0] (B, 1500, 1280)
        ──32 × pre-LayerNorm block (20 heads, GELU MLP 5120)──▶ hidden_states[1..31], block 32's output
        ──final LayerNorm──▶ hidden_states[32] (B, 1500, 1280)

Hidden states are indexed as ``transformers`` returns them with
``output_hidden_states=True`` (MuFun's code picks ``[0, 7, 15, 32]`` from that
tuple): index 0 is the input of block 1, index i (1 ≤ i < 32) is block i's
output, and the last index is the output of the final LayerNorm (HF replaces
the raw output of the last block by ``last_hidden_state``).

Module names follow the HF checkpoint so that ``model.encoder.*`` loads with the
short rename table :data:`HF_RENAMES` (HF keeps fc1/fc2 on the layer and calls
the output projection ``out_proj``; here they live in the shared ``GELUMLP`` and
``Attention``).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from omni import trace
from omni.mufun.config import WhisperConfig
from omni.nn.attention import Attention
from omni.nn.mlp import GELUMLP
from omni.nn.positions import sinusoids

# HF WhisperEncoder key fragment → ours (applied inside each layer's keys).
HF_RENAMES = {
    "self_attn.out_proj.": "self_attn.o_proj.",
    "fc1.": "mlp.fc1.",
    "fc2.": "mlp.fc2.",
}


class WhisperEncoderLayer(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x)); bidirectional attention, q/v/out biased, k not."""

    def __init__(self, cfg: WhisperConfig, name: str):
        super().__init__()
        d = cfg.d_model
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.self_attn = Attention(d, cfg.n_heads, causal=False, qkv_bias=True, k_bias=False, out_bias=True,
                                   name=f"{name}.attn")
        self.final_layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = GELUMLP(d, cfg.ffn_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) → (B, T, C)."""
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.mlp(self.final_layer_norm(x))


class WhisperEncoder(nn.Module):
    def __init__(self, cfg: WhisperConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.conv1 = nn.Conv1d(cfg.n_mels, d, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=cfg.conv2_stride, padding=1)
        # Fixed sinusoids, stored like HF's (a frozen nn.Embedding) so the checkpoint key matches.
        self.embed_positions = nn.Embedding(cfg.n_positions, d)
        self.embed_positions.requires_grad_(False)
        if self.embed_positions.weight.device.type != "meta":
            with torch.no_grad():
                self.embed_positions.weight.copy_(sinusoids(cfg.n_positions, d))
        self.layers = nn.ModuleList(WhisperEncoderLayer(cfg, name=f"whisper.layer{i}") for i in range(cfg.n_layers))
        self.layer_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, mel: torch.Tensor, keep: tuple[int, ...] | None = None) -> list[torch.Tensor | None]:
        """mel (B, F, frames) → hidden states, a list of n_layers + 1 tensors (B, n_positions, d_model).

        ``keep``: hidden-state indices to return (others are None, to save memory);
        None returns all of them. The trace shows block 1 in full and the kept states.
        """
        c = self.cfg
        assert mel.dim() == 3 and mel.shape[1] == c.n_mels and mel.shape[2] == c.n_frames, \
            f"Whisper expects mel (B, {c.n_mels}, {c.n_frames}), got {tuple(mel.shape)}"
        keep_set = set(range(c.n_layers + 1)) if keep is None else set(keep)
        trace.record("whisper.mel", mel, f"log-mel input: {c.n_mels} bins × {c.n_frames} frames")
        x = F.gelu(self.conv1(mel))                         # (B, C, frames)
        x = F.gelu(self.conv2(x))                           # (B, C, T), T = frames / conv2_stride
        x = x.transpose(1, 2)                               # (B, T, C)
        x = x + self.embed_positions.weight.to(x.dtype)     # (B, T, C) + (T, C)
        states: list[torch.Tensor | None] = [x if 0 in keep_set else None]
        for i, layer in enumerate(self.layers):
            x = layer(x)                                    # (B, T, C)
            if i == len(self.layers) - 1:
                x = self.layer_norm(x)                      # the last index is after the final LayerNorm
            states.append(x if i + 1 in keep_set else None)
        for i in sorted(keep_set):
            trace.record(f"whisper.hidden.{i}", states[i], _describe(i, c.n_layers))
        return states


def _describe(i: int, n_layers: int) -> str:
    if i == 0:
        return "hidden state 0: conv stem + positions (input of block 1)"
    if i == n_layers:
        return f"hidden state {i}: block {i} + final LayerNorm"
    return f"hidden state {i}: output of block {i}"
