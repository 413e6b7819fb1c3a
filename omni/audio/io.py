"""Reading, resampling and writing audio.

Every model in this project hears 16 kHz mono float32. ``load_audio`` reads any
format libsndfile knows (wav, flac, ogg, mp3), averages channels to mono and
resamples with soxr, a band-limited (windowed-sinc class) resampler. The seed's
example: 3 min of 44.1 kHz stereo = 15,876,000 samples → 2,880,000 samples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """An audio file or waveform that cannot be used; the message names it."""


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read ``path`` → mono float32 tensor (T,) at ``sample_rate``."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)   # (T, channels)
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot decode audio file {path}: {e}") from e
    truncated = [ln.strip() for ln in info.extra_info.splitlines() if ln.startswith("data") and "should be" in ln]
    if truncated:       # libsndfile reads what is there and notes the header's claim: "data : 9600 (should be 4956)"
        raise AudioError(f"audio file {path} is truncated: its header and its length disagree ({truncated[0]})")
    wave = data.mean(axis=1)                                              # (T,) mono
    check_waveform(wave, what=str(path))
    return torch.from_numpy(np.ascontiguousarray(resample(wave, sr, sample_rate)))


def resample(wave: np.ndarray | torch.Tensor, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling of a mono waveform (T,) with soxr ("HQ" quality)."""
    import soxr

    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioError(f"resample expects a mono waveform (T,), got shape {wave.shape}")
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} → {target_sr}")
    if orig_sr == target_sr:
        return wave
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32)


def check_waveform(wave: np.ndarray | torch.Tensor, what: str = "waveform") -> None:
    """Raise :class:`AudioError` for an empty, NaN/Inf-containing waveform."""
    n = int(wave.shape[-1]) if wave.ndim else 0
    if n == 0:
        raise AudioError(f"{what}: zero-length audio")
    finite = np.isfinite(wave) if isinstance(wave, np.ndarray) else torch.isfinite(wave)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise AudioError(f"{what}: {bad} of {n} samples are NaN or Inf")


def save_audio(path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono waveform (T,) as 16-bit PCM wav."""
    import soundfile as sf

    if isinstance(wave, torch.Tensor):
        wave = wave.detach().float().cpu().numpy()
    check_waveform(np.asarray(wave), what=f"waveform for {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")
    return path
