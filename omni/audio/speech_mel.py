"""The Talker's speech mel: 16 kHz audio seen as 128 log-mel bins at 12.5 frames/s.

One definition shared by the RVQ codec, the Griffin-Lim vocoder and the data
pipeline (seed 004, Parts 5 and 6)::

    wave (T,) ──pad 1920 zeros each side──▶ STFT (n_fft 5120, hop 1280, Hann 5120)
        ──|·|──▶ (2561, frames) ──mel filterbank (128 × 2561)──▶ ln(max(·, 1e-5)) ──▶ (frames, 128)

Choices, and why:

* **hop 1280** (80 ms): 16,000 / 1,280 = 12.5 frames per second, the Talker's rate.
* **window = n_fft = 5120** (320 ms, 4 × hop): 75 % overlap. Griffin-Lim recovers phase
  from the consistency of overlapping frames; with less than ~75 % overlap the
  frames share too little signal and the reconstruction stays rough. The long
  window also gives 3.125 Hz bins, so even the narrowest low mel filters
  (~47 Hz wide) cover ~15 bins and none is empty.
* **frames = samples // hop** exactly: the signal is padded with (n_fft − hop) / 2
  = 1920 zeros on both sides, so frame t's window is centred on the middle of
  samples [t·hop, (t+1)·hop). 385,280 samples → 301 frames and 301 frames →
  385,280 samples (:func:`num_frames`, :func:`num_samples`); a trailing partial
  hop (< 80 ms) belongs to no frame.
* **domain = "log"**: natural log of the magnitude mel with a floor of 1e-5
  (≈ −11.5), a field of the config, so the vocoder never guesses the domain
  from the values.
* Slaney mel scale and area normalisation, 0–8 kHz (librosa's defaults), built
  on the project's one :func:`~omni.audio.mel.mel_filterbank` and
  :func:`~omni.audio.mel.stft_power`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from omni.audio.io import SAMPLE_RATE
from omni.audio.mel import apply_filterbank, mel_filterbank, stft_power

MEL_DOMAINS = ("log", "linear")


@dataclass(frozen=True)
class SpeechMelConfig:
    sample_rate: int = SAMPLE_RATE
    hop_length: int = 1280          # 80 ms → 12.5 frames/s
    n_fft: int = 5120               # = win_length: 4 × hop, 75 % overlap for Griffin-Lim
    win_length: int = 5120
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    power: float = 1.0              # 1: mel of the magnitude; 2: of the power
    domain: str = "log"             # "log": ln(max(mel, log_floor)); "linear": the mel itself
    log_floor: float = 1e-5         # smallest linear value the log domain represents (ln → −11.51)

    def __post_init__(self):
        if self.domain not in MEL_DOMAINS:
            raise ValueError(f"SpeechMelConfig.domain must be one of {MEL_DOMAINS}, got {self.domain!r}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} > n_fft {self.n_fft}")
        if (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"n_fft − hop_length must be even to pad both sides equally, "
                             f"got {self.n_fft} − {self.hop_length}")
        if self.hop_length > self.win_length:
            raise ValueError(f"hop_length {self.hop_length} > win_length {self.win_length}: frames would leave gaps")
        if self.log_floor <= 0:
            raise ValueError(f"log_floor must be > 0, got {self.log_floor}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"power must be 1.0 (magnitude) or 2.0 (power), got {self.power}")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length          # 12.5 Hz

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1                          # 2561

    @property
    def framing(self) -> "Framing":
        return Framing(self.n_fft, self.hop_length, self.win_length, pad=(self.n_fft - self.hop_length) // 2)


def num_frames(n_samples: int, cfg: SpeechMelConfig = SpeechMelConfig()) -> int:
    """Mel frames describing ``n_samples`` samples: n_samples // hop (385,280 → 301)."""
    return n_samples // cfg.hop_length


def num_samples(n_frames: int, cfg: SpeechMelConfig = SpeechMelConfig()) -> int:
    """Samples the vocoder produces for ``n_frames`` frames: n_frames × hop (301 → 385,280)."""
    return n_frames * cfg.hop_length


@dataclass(frozen=True)
class Framing:
    """How a signal is cut into windowed frames, and put back together.

    The signal is padded with ``pad`` zeros on both sides; frame t covers padded
    samples [t·hop, t·hop + n_fft). ``pad = (n_fft − hop) / 2`` is the speech mel's
    framing; ``pad = n_fft // 2`` is librosa's ``center=True`` (used by the benchmark).
    """

    n_fft: int
    hop_length: int
    win_length: int
    pad: int

    def window(self, device=None) -> torch.Tensor:
        """Periodic Hann of win_length, zero-padded to n_fft in the centre (as torch.stft does)."""
        return _window(self, str(device or "cpu"))

    def num_frames(self, n_samples: int) -> int:
        padded = n_samples + 2 * self.pad
        if padded < self.n_fft:
            raise ValueError(f"{n_samples} samples (+{2 * self.pad} padding) are shorter than one "
                             f"window of {self.n_fft}")
        return 1 + (padded - self.n_fft) // self.hop_length

    def padded(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (..., T) → zero-padded (..., T + 2·pad)."""
        return F.pad(wave, (self.pad, self.pad))

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (..., T) → complex spectrogram (..., n_fft//2 + 1, frames)."""
        return self.stft_frames(wave).transpose(-1, -2)

    def istft(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """complex (..., n_fft//2 + 1, frames) → wave (..., length); see :meth:`istft_frames`."""
        return self.istft_frames(spec.transpose(-1, -2), length)

    # Frame-major versions (..., frames, freqs): each frame's FFT runs over contiguous memory.
    # Griffin-Lim iterates on these to avoid a transpose per step.
    def stft_frames(self, wave: torch.Tensor) -> torch.Tensor:
        """wave (..., T) → complex (..., frames, n_fft//2 + 1): rFFT of each windowed frame."""
        self.num_frames(wave.shape[-1])                                       # raises if too short
        frames = self.padded(wave.float()).unfold(-1, self.n_fft, self.hop_length)   # (..., frames, n_fft)
        return torch.fft.rfft(frames * self.window(wave.device), dim=-1)

    def istft_frames(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """complex (..., frames, n_fft//2 + 1) → wave (..., length): inverse FFT of each frame,
        windowed overlap-add, divided by the summed squared window (the least-squares ISTFT).

        ``length`` defaults to what the frames span without the padding
        ((frames − 1)·hop + n_fft − 2·pad; frames × hop for the speech framing).
        """
        shape = spec.shape
        if shape[-1] != self.n_fft // 2 + 1:
            raise ValueError(f"istft expects {self.n_fft // 2 + 1} frequency bins, got spectrogram {tuple(shape)} "
                             f"(frames, freqs)")
        n_frames = shape[-2]
        total = (n_frames - 1) * self.hop_length + self.n_fft
        length = total - 2 * self.pad if length is None else length
        frames = torch.fft.irfft(spec.reshape(-1, *shape[-2:]), n=self.n_fft, dim=-1)      # (N, frames, n_fft)
        frames = frames.mul_(self.window(spec.device))
        wave = _overlap_add(frames, self.hop_length)[:, :total]                            # (N, total)
        wave = wave.mul_(_inverse_envelope(self, n_frames, str(spec.device)))
        wave = wave[:, self.pad:self.pad + length]
        if wave.shape[-1] < length:                                                        # asked past the frames
            wave = F.pad(wave, (0, length - wave.shape[-1]))
        return wave.reshape(*shape[:-2], length)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """frames (N, T, n) → Σ_t frame t placed at sample t·hop: (N, (T + r − 1)·hop), r = ⌈n / hop⌉.

    Each frame is cut into r hop-long pieces; piece j of every frame lands in
    output block t + j, so r shifted slice-adds do the whole overlap-add (much
    faster on CPU than ``F.fold``, which needs a transposed copy).
    """
    N, T, n = frames.shape
    r = -(-n // hop)
    pieces = F.pad(frames, (0, r * hop - n)).view(N, T, r, hop)                    # (N, T, r, hop)
    out = frames.new_zeros(N, T + r - 1, hop)
    for j in range(r):
        out[:, j:j + T].add_(pieces[:, :, j])
    return out.reshape(N, (T + r - 1) * hop)


@functools.lru_cache(maxsize=16)
def _window(framing: Framing, device: str) -> torch.Tensor:
    w = torch.hann_window(framing.win_length, periodic=True, device=device, dtype=torch.float32)
    left = (framing.n_fft - framing.win_length) // 2
    return F.pad(w, (left, framing.n_fft - framing.win_length - left))


@functools.lru_cache(maxsize=16)
def _inverse_envelope(framing: Framing, n_frames: int, device: str) -> torch.Tensor:
    """1 / Σ_t window²(n − t·hop), the factor that undoes overlap-adding windowed frames
    (0 where no window reaches, as librosa does)."""
    total = (n_frames - 1) * framing.hop_length + framing.n_fft
    w2 = framing.window(device).pow(2).expand(1, n_frames, framing.n_fft)
    envelope = _overlap_add(w2, framing.hop_length)[0, :total]
    return torch.where(envelope > 1e-10, 1.0 / envelope.clamp_min(1e-10), torch.zeros_like(envelope))


@functools.lru_cache(maxsize=8)
def mel_basis(cfg: SpeechMelConfig) -> torch.Tensor:
    """The speech mel filterbank (n_mels, n_freqs) = (128, 2561)."""
    return mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)


def speech_mel(wave: torch.Tensor, cfg: SpeechMelConfig = SpeechMelConfig()) -> torch.Tensor:
    """wave (..., T) at cfg.sample_rate → mel (..., T // hop, n_mels) in cfg.domain.

    Time-major, as the codec and the Talker read it: (385,280,) → (301, 128).
    """
    if wave.shape[-1] < cfg.hop_length:
        raise ValueError(f"speech_mel needs at least one hop ({cfg.hop_length} samples), got {wave.shape[-1]}")
    framing = cfg.framing
    wave = wave[..., :num_samples(num_frames(wave.shape[-1], cfg), cfg)]   # drop a trailing partial hop
    spec = stft_power(framing.padded(wave.float()), cfg.n_fft, cfg.hop_length, cfg.win_length,
                      center=False, power=cfg.power)                      # (..., n_freqs, frames)
    mel = apply_filterbank(mel_basis(cfg).to(spec.device), spec)          # (..., n_mels, frames)
    mel = mel.transpose(-1, -2)                                           # (..., frames, n_mels)
    assert mel.shape[-2] == num_frames(wave.shape[-1], cfg), \
        f"speech_mel framing broke: {wave.shape[-1]} samples gave {mel.shape[-2]} frames"
    if cfg.domain == "log":
        return torch.log(mel.clamp_min(cfg.log_floor))
    return mel


def mel_to_linear(mel: torch.Tensor, cfg: SpeechMelConfig = SpeechMelConfig()) -> torch.Tensor:
    """Undo the domain: a log mel → exp(mel); a linear mel is returned as is."""
    return torch.exp(mel) if cfg.domain == "log" else mel


def silence_level(cfg: SpeechMelConfig = SpeechMelConfig()) -> float:
    """The value a silent frame has in cfg.domain (ln 1e-5 ≈ −11.51 for the log mel)."""
    return math.log(cfg.log_floor) if cfg.domain == "log" else 0.0
