"""The STFT and the mel filterbank every log-mel recipe in the project shares.

Written in torch (no torchaudio). The filterbank follows librosa's
``librosa.filters.mel`` (Slaney mel scale and Slaney area normalisation by
default, the HTK scale on request), which is also what Whisper uses.

Recipes built on these two functions live next to the model that hears them:
the tiny model's (100 frames/s), the Talker's speech mel (12.5 frames/s) and
Whisper's.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, logstep = 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> torch.Tensor:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), float32.

    Matches ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm)``.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 ≤ f_min < f_max ≤ sample_rate/2, got f_min={f_min}, f_max={f_max}, sr={sample_rate}")
    n_freqs = n_fft // 2 + 1
    fft_freqs = np.linspace(0, sample_rate / 2, n_freqs)
    mel_pts = np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, htk)                       # (n_mels + 2,)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]           # (n_mels + 2, n_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))      # (n_mels, n_freqs)
    if norm == "slaney":
        weights *= (2.0 / (hz_pts[2:n_mels + 2] - hz_pts[:n_mels]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def apply_filterbank(filters: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """filters (M, N) @ spec (..., N, frames) → (..., M, frames), always in fp32.

    Autocast is switched off here: power spectra run far past fp16's largest value
    (65,504), and bf16 would round the features a model was trained on in fp32. So
    evaluation under a training run's autocast sees the same features as training.
    """
    device = spec.device.type                            # "meta" in a dry run: no autocast to leave
    off = torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else contextlib.nullcontext()
    with off:
        return filters.float() @ spec.float()


def stft_power(wave: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
               center: bool = True, pad_mode: str = "reflect", power: float = 2.0) -> torch.Tensor:
    """|STFT|^power of ``wave`` (..., T) with a periodic Hann window → (..., n_fft//2+1, frames).

    With ``center=True`` frames are centred (the signal is padded by n_fft // 2
    on both sides), so there are 1 + T // hop_length frames.
    """
    win_length = win_length or n_fft
    window = torch.hann_window(win_length, periodic=True, device=wave.device, dtype=torch.float32)
    shape = wave.shape
    spec = torch.stft(wave.reshape(-1, shape[-1]).float(), n_fft, hop_length, win_length, window,
                      center=center, pad_mode=pad_mode, return_complex=True)   # (N, F, frames)
    if power == 2.0:   # re² + im²: |z|² without abs's square root (abs() ** 2 took 5× as long, 30 s at 16 kHz)
        out = spec.real.square() + spec.imag.square()
    else:
        mag = spec.abs()
        out = mag.pow(power) if power != 1.0 else mag
    return out.reshape(*shape[:-1], *out.shape[-2:])
