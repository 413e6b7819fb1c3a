"""Whisper's log-mel spectrogram, exactly as Whisper (and ``WhisperFeatureExtractor``) computes it.

    wave (T,) at 16 kHz ──pad/trim to 480,000 samples (30 s)──▶ |STFT|² (201, 3001)
        ──drop the last frame──▶ (201, 3000) ──Slaney mel filters 0–8 kHz──▶ (F, 3000)
        ──log10(max(x, 1e-10)), floor at max − 8, (x + 4) / 4──▶ log-mel (F, 3000)

F (``n_mels``) is 128 for Whisper-large-v3 and 80 for the earlier Whisper models
the MuFun documents describe (the ``as-documented`` preset). The STFT and the
filterbank come from :mod:`omni.audio.mel`, the project's one audio front end.

Padding happens on the waveform (zeros up to 30 s) before the spectrogram, as
``WhisperFeatureExtractor`` does: the "max − 8" floor is therefore taken over
the whole 30-second window, padded silence included. (openai/whisper pads with
30 s of zeros and trims the *frames* afterwards; for audio ≤ 30 s the first
3000 frames are the same, only the floor's maximum may differ when the audio is
longer than 30 s, which MuFun never feeds: it chunks first.)
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from omni.audio.io import SAMPLE_RATE
from omni.audio.mel import apply_filterbank, mel_filterbank, stft_power

N_FFT = 400                                # 25 ms window at 16 kHz
HOP_LENGTH = 160                           # 10 ms hop → 100 frames per second
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE    # 480,000 samples in one Whisper window
N_FRAMES = N_SAMPLES // HOP_LENGTH         # 3000 mel frames in one Whisper window
F_MAX = 8000.0                             # Whisper's filterbank spans 0–8 kHz (= Nyquist at 16 kHz)
LOG_FLOOR = 1e-10                          # clamp before log10
DYNAMIC_RANGE = 8.0                        # log10 units kept below the maximum (80 dB)


@functools.lru_cache(maxsize=4)
def whisper_mel_filters(n_mels: int) -> torch.Tensor:
    """Slaney-scale, Slaney-normalised filters (n_mels, 201), as Whisper's ``mel_filters.npz``."""
    return mel_filterbank(SAMPLE_RATE, N_FFT, n_mels, f_min=0.0, f_max=F_MAX, htk=False, norm="slaney")


def pad_or_trim(wave: torch.Tensor, length: int = N_SAMPLES) -> torch.Tensor:
    """Zero-pad or cut the last dimension of ``wave`` (..., T) to ``length`` samples."""
    T = wave.shape[-1]
    if T > length:
        return wave[..., :length]
    if T < length:
        return F.pad(wave, (0, length - T))
    return wave


def whisper_log_mel(wave: torch.Tensor, n_mels: int = 128) -> torch.Tensor:
    """Whisper log-mel of a 16 kHz waveform.

    wave: (T,) or (B, T) float; anything longer than 30 s is cut, shorter is zero-padded.
    Returns (n_mels, 3000) or (B, n_mels, 3000) float32, values roughly in [-1, 1.5].
    """
    if wave.dim() not in (1, 2):
        raise ValueError(f"whisper_log_mel expects a waveform (T,) or (B, T), got shape {tuple(wave.shape)}")
    if wave.shape[-1] == 0:
        raise ValueError("whisper_log_mel got a zero-length waveform")
    batched = wave.dim() == 2
    x = pad_or_trim(wave.float(), N_SAMPLES)                                     # (B?, 480000)
    power = stft_power(x, N_FFT, HOP_LENGTH)                                     # (B?, 201, 3001)
    power = power[..., :-1]                                                      # (B?, 201, 3000): Whisper drops the last frame
    filters = whisper_mel_filters(n_mels).to(power.device)                       # (F, 201)
    mel = apply_filterbank(filters, power)                                       # (B?, F, 3000)
    log_spec = mel.clamp_(min=LOG_FLOOR).log10_()                                # in place: mel is ours
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)                             # one maximum per example
    log_spec = torch.maximum(log_spec, peak - DYNAMIC_RANGE, out=log_spec)
    log_spec = log_spec.add_(4.0).div_(4.0)                                      # (x + 4) / 4
    assert log_spec.shape[-2:] == (n_mels, N_FRAMES), f"log-mel shape {tuple(log_spec.shape)}"
    return log_spec if batched else log_spec.reshape(n_mels, N_FRAMES)
