"""The Griffin-Lim vocoder: speech mel (T, 128) → 16 kHz waveform (T × 1280,), in torch.

Seed 004, Part 5, Step 5::

    mel (301, 128) ──undo the log (the config says so)──▶ linear mel (301, 128)
        ──pseudo-inverse of the SAME filterbank, clamped ≥ 0──▶ magnitude (301, 2561)
        ──fast Griffin-Lim, 32 iterations, momentum 0.99──▶ wave (385,280,) ──peak → 0.95

* The mel's domain comes from :class:`~omni.audio.speech_mel.SpeechMelConfig`,
  never from looking at the values (the seed's "automatic domain detection").
* Mel → magnitude: ``pinv(filterbank) @ mel`` is the least-squares (minimum
  norm) answer to ``filterbank @ magnitude = mel``; negative bins are clamped
  to 0 because a magnitude cannot be negative. It costs one (2561 × 128) matrix
  product, against hundreds of iterations for non-negative least squares.
* Fast Griffin-Lim (Perraudin et al. 2013) exactly as ``librosa.griffinlim``
  runs it: the new phase estimate is ``rebuilt − momentum / (1 + momentum) ·
  previous rebuilt``, starting from random phases (seeded, so runs repeat).
* Failure is an error (:class:`VocoderError`), never a placeholder sound: a
  mel that is non-finite, of the wrong shape, or entirely silent (nothing to
  invert), or a result that is not finite.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from omni import trace
from omni.audio.mel import apply_filterbank
from omni.audio.speech_mel import Framing, SpeechMelConfig, mel_basis, mel_to_linear, num_samples, silence_level


class VocoderError(ValueError):
    """The vocoder cannot turn this mel into audio; the message says why."""


@dataclass
class VocoderConfig:
    n_iter: int = 32            # Griffin-Lim iterations
    momentum: float = 0.99      # fast Griffin-Lim; 0 gives the original algorithm
    peak: float = 0.95          # the output's largest |sample|, leaving headroom below clipping
    seed: int = 0               # random initial phase, seeded so the same mel gives the same wave
    init: str = "random"        # initial phase: "random" (seeded) or "zero" (librosa's init=None)

    def __post_init__(self):
        if self.n_iter < 1:
            raise ValueError(f"VocoderConfig.n_iter must be ≥ 1, got {self.n_iter}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"VocoderConfig.momentum must be in [0, 1), got {self.momentum}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"VocoderConfig.peak must be in (0, 1], got {self.peak}")
        if self.init not in ("random", "zero"):
            raise ValueError(f"VocoderConfig.init must be 'random' or 'zero', got {self.init!r}")


@functools.lru_cache(maxsize=8)
def mel_pinv(cfg: SpeechMelConfig) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of the speech filterbank: (n_freqs, n_mels) = (2561, 128)."""
    return torch.linalg.pinv(mel_basis(cfg).double()).float()


def mel_to_magnitude(mel: torch.Tensor, cfg: SpeechMelConfig = SpeechMelConfig()) -> torch.Tensor:
    """mel (T, n_mels) in cfg.domain → STFT magnitude (T, n_freqs), ≥ 0."""
    check_mel(mel, cfg)
    linear = mel_to_linear(mel.float(), cfg)                                     # (T, n_mels)
    spec = apply_filterbank(mel_pinv(cfg).to(mel.device), linear.T).T.clamp_min(0.0)   # (T, n_freqs)
    if cfg.power == 2.0:
        spec = spec.sqrt()                                                       # power → magnitude
    if not bool(spec.any()):
        raise VocoderError("the mel inverts to an all-zero magnitude spectrogram: nothing to vocode")
    return spec


def check_mel(mel: torch.Tensor, cfg: SpeechMelConfig) -> None:
    """Raise :class:`VocoderError` unless mel is a finite, non-silent (T, n_mels) tensor."""
    if mel.dim() != 2 or mel.shape[-1] != cfg.n_mels or mel.shape[0] < 1:
        raise VocoderError(f"the vocoder expects a mel of shape (T, {cfg.n_mels}) with T ≥ 1, "
                           f"got {tuple(mel.shape)}")
    if not bool(torch.isfinite(mel).all()):
        bad = int((~torch.isfinite(mel)).sum())
        raise VocoderError(f"mel has {bad} NaN/Inf values of {mel.numel()}: cannot vocode")
    if cfg.domain == "linear" and bool((mel < 0).any()):
        raise VocoderError(f"a linear-domain mel cannot be negative (min {float(mel.min()):.3g}); "
                           f"is it a log mel? (SpeechMelConfig.domain='{cfg.domain}')")
    floor = silence_level(cfg)
    if bool((mel <= floor + 1e-6).all()):
        raise VocoderError(f"every mel value is at the silence level ({floor:.3f} in the '{cfg.domain}' "
                           f"domain): nothing to invert")


def griffin_lim(magnitude: torch.Tensor, framing: Framing, n_iter: int = 32, momentum: float = 0.99,
                length: int | None = None, generator: torch.Generator | None = None,
                init: str = "random") -> torch.Tensor:
    """Phase retrieval: magnitude (..., frames, n_fft//2 + 1) → wave (..., length).

    The STFT pair is ``framing``'s (frame-major layout); ``length`` defaults to
    what the frames span (frames × hop for the speech framing). ``init``:
    "random" phases (from ``generator``) or "zero" phases (librosa's init=None).
    """
    if magnitude.shape[-1] != framing.n_fft // 2 + 1:
        raise VocoderError(f"griffin_lim expects (..., frames, {framing.n_fft // 2 + 1}) magnitudes, "
                           f"got {tuple(magnitude.shape)}")
    if init not in ("random", "zero"):
        raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
    mag = magnitude.float()
    phase = (torch.rand(mag.shape, generator=generator, device=mag.device) * (2 * math.pi) if init == "random"
             else torch.zeros_like(mag))
    spec = torch.polar(mag, phase)                                   # (..., frames, F) complex
    accel = momentum / (1 + momentum)                                # librosa's form of the momentum
    prev = None
    for _ in range(n_iter):
        rebuilt = framing.stft_frames(framing.istft_frames(spec, length))   # nearest consistent spectrogram
        angles = rebuilt if prev is None else torch.sub(rebuilt, prev, alpha=accel)
        # keep the phase, impose the target magnitude; sgn(z) = z / |z| (0 at z = 0, as librosa's
        # z / (|z| + tiny)), one fused pass instead of abs, add and divide
        spec = torch.sgn(angles).mul_(mag)
        prev = rebuilt
    return framing.istft_frames(spec, length)


def spectral_convergence(magnitude: torch.Tensor, wave: torch.Tensor, framing: Framing) -> float:
    """‖S − |STFT(wave)|‖_F / ‖S‖_F for a target magnitude S (..., frames, F): 0 is perfect."""
    rebuilt = framing.stft_frames(wave).abs()
    if rebuilt.shape != magnitude.shape:
        raise ValueError(f"wave gives a spectrogram of {tuple(rebuilt.shape)}, target is {tuple(magnitude.shape)}")
    return float(torch.linalg.vector_norm(magnitude - rebuilt) / torch.linalg.vector_norm(magnitude))


@trace.stage("vocoder")
def mel_to_audio(mel: torch.Tensor, cfg: SpeechMelConfig = SpeechMelConfig(),
                 vcfg: VocoderConfig = VocoderConfig()) -> torch.Tensor:
    """mel (T, n_mels) → wave (T × hop,) peak-normalised to vcfg.peak: (301, 128) → (385,280,)."""
    mel = mel.detach()                                                            # the vocoder is not trained
    trace.record("vocoder.mel", mel, f"speech mel ({cfg.domain} domain), {cfg.frame_rate:g} frames/s")
    mag = mel_to_magnitude(mel, cfg)                                              # (T, n_freqs)
    trace.record("vocoder.magnitude", mag, "STFT magnitude from the filterbank's pseudo-inverse (≥ 0)")
    gen = torch.Generator(device=mag.device).manual_seed(vcfg.seed)
    wave = griffin_lim(mag, cfg.framing, vcfg.n_iter, vcfg.momentum, generator=gen, init=vcfg.init)       # (T·hop,)
    assert wave.shape == (num_samples(mel.shape[0], cfg),), \
        f"Griffin-Lim gave {tuple(wave.shape)} samples for {mel.shape[0]} frames"
    if not bool(torch.isfinite(wave).all()):
        raise VocoderError(f"Griffin-Lim produced {int((~torch.isfinite(wave)).sum())} NaN/Inf samples")
    peak = float(wave.abs().max())
    if peak == 0.0:
        raise VocoderError("Griffin-Lim produced an all-zero waveform: nothing to normalise")
    wave = wave * (vcfg.peak / peak)
    trace.record("vocoder.wave", wave, f"waveform @ {cfg.sample_rate} Hz, peak {vcfg.peak}")
    return wave
