"""AudioEncoderTiny: log-mel frames → one 192-d embedding per 40 ms (seed 004, Part 3).

    mel (B, 100, 128) ──unsqueeze──▶ (B, 1, 100, 128)
        ──Conv2d(1→64, 3×3, stride 2) + GELU──▶ (B, 64, 50, 64)
        ──Conv2d(64→64, 3×3, stride 2) + GELU──▶ (B, 64, 25, 32)       4× down in time and in frequency
        ──permute + flatten──▶ (B, 25, 64·32 = 2048) ──Linear──▶ (B, 25, 192)
        ──+ sinusoidal positions, 4 × Block (bidirectional, LayerNorm, GELU MLP)──▶ LayerNorm ──▶ (B, 25, 192)

100 mel frames per second become 25 embeddings per second. The number of
output frames for F input frames is :func:`output_length` (a CTC loss needs it):
each 3×3 convolution with stride 2 and padding 1 maps F → ⌊(F − 1) / 2⌋ + 1 = ⌈F / 2⌉.

Batches of clips with different lengths: pass ``mel_lengths`` (B,). Padded mel
frames are zeroed before each convolution, exactly as the convolution's own
zero padding would see the end of a lone clip, and padded output frames are
masked out of attention (a key-padding mask), so each clip's valid outputs equal
those of the clip encoded alone.

Positions are fixed sinusoids (Whisper's), computed for any length, so the
encoder has no maximum clip length of its own; the audio-token limit lives in
:class:`omni.models.omni_model.OmniModel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from omni import trace
from omni.nn import Block, check_finite
from omni.nn.positions import sinusoids

CONV_KERNEL, CONV_STRIDE, CONV_PADDING = 3, 2, 1


@dataclass
class AudioEncoderConfig:
    n_mels: int = 128               # mel bins F of the input (the tiny log-mel recipe)
    conv_channels: int = 64         # channels of both stride-2 convolutions
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 3                # head_dim = 192 / 3 = 64
    ffn_hidden: int = 768           # GELU MLP width, 4 · d_model
    norm_eps: float = 1e-5
    check_finite: bool = True       # raise on NaN/Inf output embeddings, as the seed documents

    def __post_init__(self):
        assert self.d_model % self.n_heads == 0, f"d_model {self.d_model} not divisible by n_heads {self.n_heads}"
        assert self.d_model % 2 == 0, f"sinusoidal positions need an even d_model, got {self.d_model}"
        assert self.n_mels >= 1 and self.conv_channels >= 1, "n_mels and conv_channels must be positive"

    @property
    def freq_out(self) -> int:
        """Mel bins left after the two convolutions: 128 → 64 → 32."""
        return output_length(self.n_mels)

    @property
    def flat_dim(self) -> int:
        """conv_channels · freq_out = 64 · 32 = 2048, the input width of ``proj``."""
        return self.conv_channels * self.freq_out


def _conv_out(n: int | torch.Tensor) -> int | torch.Tensor:
    return (n + 2 * CONV_PADDING - CONV_KERNEL) // CONV_STRIDE + 1


def output_length_half(n_frames: torch.Tensor) -> torch.Tensor:
    """Frames after the first convolution only: ⌈n / 2⌉ (the padding mask between the convolutions)."""
    return _conv_out(n_frames)


def output_length(n_frames: int | torch.Tensor) -> int | torch.Tensor:
    """Encoder output frames for ``n_frames`` mel frames (int or integer tensor): ⌈⌈n / 2⌉ / 2⌉.

    100 → 25, 99 → 25, 101 → 26, 4 → 1, 1 → 1. Also used for the frequency axis (128 → 32).
    """
    if isinstance(n_frames, torch.Tensor):
        if n_frames.is_floating_point():
            raise TypeError(f"output_length needs integer frame counts, got {n_frames.dtype}")
        if bool((n_frames < 1).any()):
            raise ValueError(f"frame counts must be ≥ 1, got {n_frames.tolist()}")
    elif n_frames < 1:
        raise ValueError(f"frame count must be ≥ 1, got {n_frames}")
    return _conv_out(_conv_out(n_frames))


def frame_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """lengths (B,) → bool (B, T), True on valid frames."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class AudioEncoderTiny(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.conv_channels
        self.conv1 = nn.Conv2d(1, C, CONV_KERNEL, CONV_STRIDE, CONV_PADDING)
        self.conv2 = nn.Conv2d(C, C, CONV_KERNEL, CONV_STRIDE, CONV_PADDING)
        self.proj = nn.Linear(cfg.flat_dim, cfg.d_model)
        self.blocks = nn.ModuleList(
            Block(cfg.d_model, cfg.n_heads, cfg.ffn_hidden, causal=False, norm="layer", mlp="gelu",
                  norm_eps=cfg.norm_eps, name=f"audio.layer{i}")
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def output_length(self, n_frames: int | torch.Tensor) -> int | torch.Tensor:
        return output_length(n_frames)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """mel (B, T, F) → embeddings (B, T', d_model) with T' = output_length(T).

        mel_lengths (B,): valid frames per clip when the batch is right-padded.
        Positions past :func:`output_length` of a clip's length are padding; the
        caller gets those lengths from :meth:`output_length`.
        """
        cfg = self.cfg
        assert mel.dim() == 3 and mel.shape[-1] == cfg.n_mels, \
            f"AudioEncoderTiny expects mel (B, T, {cfg.n_mels}), got {tuple(mel.shape)}"
        B, T, _ = mel.shape
        trace.record("audio.mel", mel, "log-mel frames, 100 per second")
        in_mask = out_mask = None
        if mel_lengths is not None:
            if mel_lengths.shape != (B,):
                raise ValueError(f"mel_lengths must have shape ({B},), got {tuple(mel_lengths.shape)}")
            if bool((mel_lengths < 1).any()) or bool((mel_lengths > T).any()):
                raise ValueError(f"mel_lengths must lie in [1, {T}], got {mel_lengths.tolist()}")
            mel_lengths = mel_lengths.to(mel.device)
            in_mask = frame_mask(mel_lengths, T)                                      # (B, T)
            mel = mel * in_mask[:, :, None]

        x = mel[:, None]                                                              # (B, 1, T, F)
        x = F.gelu(self.conv1(x))                                                     # (B, C, T/2, F/2)
        if in_mask is not None:   # zero padded frames as the next conv's own padding would be
            x = x * frame_mask(output_length_half(mel_lengths), x.shape[2])[:, None, :, None]
        trace.record("audio.conv1", x, "Conv2d stride 2 + GELU: 2× down in time and frequency")
        x = F.gelu(self.conv2(x))                                                     # (B, C, T/4, F/4)
        trace.record("audio.conv2", x, "Conv2d stride 2 + GELU: 4× down in all")
        B, C, T4, F4 = x.shape
        x = rearrange(x, "b c t f -> b t (c f)")                                      # (B, T', C·F')
        trace.record("audio.flat", x, "channels × bins flattened per frame")
        x = self.proj(x)                                                              # (B, T', d_model)
        trace.record("audio.proj", x, f"Linear {C * F4} → {cfg.d_model}")
        x = x + sinusoids(T4, cfg.d_model).to(x.device, x.dtype)

        attn_mask = None
        if mel_lengths is not None:
            out_mask = frame_mask(output_length(mel_lengths), T4)                     # (B, T')
            attn_mask = out_mask[:, None, None, :]                                    # (B, 1, 1, T') keys
        for block in self.blocks:
            x = block(x, attn_mask=attn_mask)
        x = self.norm(x)
        if out_mask is not None:
            x = x * out_mask[:, :, None]   # padding frames come out as exact zeros
        trace.record("audio.out", x, "encoder output, 25 embeddings per second")
        if cfg.check_finite:
            check_finite(x, "AudioEncoderTiny outputs")
        return x
