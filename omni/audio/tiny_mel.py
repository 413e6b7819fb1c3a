"""The tiny model's log-mel recipe: what AudioEncoderTiny hears (seed 004, Part 3).

    wave (B, T) at 16 kHz ──STFT (n_fft 400, hop 160, periodic Hann, centred)──▶ power (B, 201, 1 + T // 160)
        ──drop the last frame──▶ (B, 201, T // 160) ──128 mel filters──▶ (B, 128, T // 160)
        ──log10(max(·, 1e-10))──▶ transpose ──▶ log-mel (B, T // 160, 128)

One second (16,000 samples) → (1, 100, 128): 100 frames per second.

Choices, and why:

* ``N_FFT = 400`` (a 25 ms window) with ``HOP_LENGTH = 160`` (10 ms): the classic
  speech front end, and Whisper's. 201 frequency bins.
* The mel filters are librosa's defaults (Slaney scale, Slaney area
  normalisation, 0 Hz to 8 kHz), built by :func:`omni.audio.mel.mel_filterbank`.
* **Exactly T // 160 frames.** A centred STFT (the signal is reflect-padded by
  200 samples on each side) gives 1 + T // 160 frames: 101 for one second. The
  last frame is centred on the final sample and mostly made of padding, so we
  drop it, as Whisper does (``stft[..., :-1]``). 16,000 samples → 100 frames.
* **Log floor 1e-10** (−100 dB, Whisper's): ``log10(max(power, 1e-10))``. Digital
  silence therefore reads −10. There is no per-clip normalisation (Whisper's
  "max − 8" clamp), so a frame's value does not depend on the rest of the clip:
  batching, cropping and streaming give the same numbers. Times ten it is
  ``librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)``.
* The shortest clip is 201 samples: reflect padding needs more samples than it
  pads (n_fft // 2 = 200). Shorter clips raise :class:`AudioError`.

Batches of different lengths: :func:`log_mel_batch` pads to the longest clip
and returns the frame count of each; :class:`omni.models.audio_encoder.AudioEncoderTiny`
turns those counts into a key-padding mask.
"""

from __future__ import annotations

import functools
import os
from typing import Sequence

import torch

from omni.audio.io import SAMPLE_RATE, AudioError, check_waveform, load_audio
from omni.audio.mel import apply_filterbank, mel_filterbank, stft_power

N_FFT = 400            # 25 ms analysis window at 16 kHz
HOP_LENGTH = 160       # 10 ms between frames → 100 frames per second
N_MELS = 128           # mel bins F
F_MIN, F_MAX = 0.0, SAMPLE_RATE / 2
LOG_FLOOR = 1e-10      # power floor before log10 (−100 dB); silence reads log10(1e-10) = −10
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH   # 100
MIN_SAMPLES = N_FFT // 2 + 1                    # 201: reflect padding needs more samples than it pads


@functools.lru_cache(maxsize=4)
def _filters(device: str) -> torch.Tensor:
    return mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, F_MIN, F_MAX, htk=False, norm="slaney").to(device)


def filterbank() -> torch.Tensor:
    """The tiny recipe's mel filters, (N_MELS, N_FFT // 2 + 1) = (128, 201)."""
    return _filters("cpu").clone()


def n_frames(n_samples: int) -> int:
    """Mel frames for a clip of ``n_samples``: T // 160 (the centred STFT's last frame is dropped)."""
    if n_samples < MIN_SAMPLES:
        raise AudioError(f"a clip of {n_samples} samples is too short for the tiny log-mel; "
                         f"it needs at least {MIN_SAMPLES} (n_fft // 2 + 1)")
    return n_samples // HOP_LENGTH


def mel_power(wave: torch.Tensor) -> torch.Tensor:
    """wave (B, T) → mel power (B, T // 160, 128), before the log (the librosa-comparable part)."""
    power = stft_power(wave, N_FFT, HOP_LENGTH, center=True, pad_mode="reflect")   # (B, 201, 1 + T//160)
    power = power[..., :-1]                                                          # (B, 201, T//160)
    mel = apply_filterbank(_filters(str(wave.device)), power)                        # (B, 128, T//160)
    return mel.transpose(-1, -2)                                                     # (B, T//160, 128)


def log_mel(wave: torch.Tensor, what: str = "waveform") -> torch.Tensor:
    """wave (T,) or (B, T), 16 kHz float → log-mel (B, T // 160, 128), float32.

    ``what`` names the clip in error messages (a file name, "batch item 3", ...).
    """
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"{what}: log_mel expects a torch.Tensor waveform, got {type(wave).__name__}")
    if wave.dim() == 1:
        wave = wave[None]                                                            # (1, T)
    if wave.dim() != 2:
        raise AudioError(f"{what}: log_mel expects a waveform (T,) or (B, T), got shape {tuple(wave.shape)}")
    check_waveform(wave, what=what)
    n_frames(wave.shape[-1])                                                         # raises if too short
    mel = mel_power(wave.float())                                                    # (B, frames, 128)
    return torch.log10(mel.clamp(min=LOG_FLOOR))


def log_mel_file(path: str | os.PathLike) -> torch.Tensor:
    """Read any audio file (→ 16 kHz mono) and return its log-mel (1, frames, 128)."""
    return log_mel(load_audio(path, SAMPLE_RATE), what=str(path))


def log_mel_batch(waves: Sequence[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of different lengths → (mel (B, F_max, 128), lengths (B,) in frames).

    Each clip is analysed alone (so its frames equal :func:`log_mel` of that
    clip), then right-padded with ``pad_value``. The padded frames carry no
    meaning: the audio encoder zeroes them and masks them out of attention.
    """
    if len(waves) == 0:
        raise AudioError("log_mel_batch got an empty list of clips")
    mels = [log_mel(w, what=f"batch item {i}")[0] for i, w in enumerate(waves)]      # each (F_i, 128)
    lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)
    out = torch.full((len(mels), int(lengths.max()), N_MELS), pad_value, dtype=torch.float32)
    for i, m in enumerate(mels):
        out[i, : m.shape[0]] = m
    return out, lengths
