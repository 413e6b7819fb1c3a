"""The speech mel: 12.5 frames/s, exact frames ↔ samples, built on the shared STFT and filterbank."""

import math

import pytest
import torch

from omni.audio.mel import mel_filterbank, stft_power
from omni.audio.speech_mel import (Framing, SpeechMelConfig, mel_basis, mel_to_linear, num_frames, num_samples,
                                   silence_level, speech_mel)


def tone(n: int, f: float = 220.0, sr: int = 16_000) -> torch.Tensor:
    t = torch.arange(n) / sr
    return 0.5 * torch.sin(2 * math.pi * f * t)


def test_frame_rate_and_part5_counts():
    cfg = SpeechMelConfig()
    assert cfg.frame_rate == 12.5
    assert num_samples(301) == 385_280 and num_frames(385_280) == 301
    assert num_frames(385_280 + cfg.hop_length - 1) == 301        # a trailing partial hop belongs to no frame
    assert cfg.framing.num_frames(385_280) == 301


def test_speech_mel_shape_and_domain():
    cfg = SpeechMelConfig()
    wave = tone(385_280)
    mel = speech_mel(wave, cfg)
    assert mel.shape == (301, 128), f"Part 5: 385,280 samples ↔ 301 frames, got {tuple(mel.shape)}"
    assert torch.isfinite(mel).all()
    assert float(mel.min()) >= silence_level(cfg) - 1e-6          # log with the stated floor
    silent = speech_mel(torch.zeros(12_800), cfg)
    assert silent.shape == (10, 128) and torch.all(silent == math.log(cfg.log_floor))
    # batch dims pass through
    assert speech_mel(torch.stack([wave[:12_800], wave[:12_800]])).shape == (2, 10, 128)


def test_built_on_shared_front_end():
    """mel = filterbank @ |STFT| from omni.audio.mel, on the zero-padded signal."""
    cfg = SpeechMelConfig(domain="linear")
    wave = tone(25_600, 440.0)
    fr = cfg.framing
    expected = (mel_filterbank(16_000, 5120, 128, 0.0, 8000.0) @
                stft_power(fr.padded(wave), 5120, 1280, center=False, power=1.0)).T
    torch.testing.assert_close(speech_mel(wave, cfg), expected)
    torch.testing.assert_close(mel_basis(cfg), mel_filterbank(16_000, 5120, 128, 0.0, 8000.0))
    # the complex STFT Griffin-Lim uses is the same STFT
    torch.testing.assert_close(fr.stft(wave).abs(), stft_power(fr.padded(wave), 5120, 1280, center=False, power=1.0))
    torch.testing.assert_close(mel_to_linear(speech_mel(wave), SpeechMelConfig()),
                               expected.clamp_min(1e-5))


def test_stft_istft_round_trip_is_exact():
    fr = SpeechMelConfig().framing
    wave = torch.randn(2, 12_800)
    back = fr.istft(fr.stft(wave))
    assert back.shape == (2, 12_800)
    assert float((back - wave).abs().max()) < 1e-5
    lib = Framing(1024, 256, 1024, pad=512)                        # librosa's center=True framing
    w = torch.randn(4000)
    assert lib.stft(w).shape == (513, 1 + 4000 // 256)
    assert float((lib.istft(lib.stft(w), length=4000) - w).abs().max()) < 1e-5
    odd = Framing(1000, 300, 800, pad=350)                          # hop does not divide n_fft, short window
    assert float((odd.istft(odd.stft(w)) - w[:odd.istft(odd.stft(w)).shape[-1]]).abs().max()) < 1e-5


def test_config_errors():
    with pytest.raises(ValueError, match="domain"):
        SpeechMelConfig(domain="db")
    with pytest.raises(TypeError):
        SpeechMelConfig(**{"hop": 1280})                            # unknown keys raise
    with pytest.raises(ValueError, match="at least one hop"):
        speech_mel(torch.zeros(100))
