"""From a waveform to the connector's input: segment, 30-second chunks, log-mel, multi-layer Whisper features.

    wave (T,) 16 kHz ──optional [start, end] segment──▶ ──30 s chunks──▶ N × (≤ 480,000,)
        ──whisper_log_mel (zero-pads each chunk to 30 s)──▶ mel (N, F, 3000)
        ──Whisper──▶ hidden states [0, 7, 15, 32], each (N, 1500, 1280)
        ──average-pool by 5──▶ 4 × (N, 300, 1280) ──concatenate──▶ (N, 300, 5120)

The chunking rule is MuFun's (``tinyllava/data/image_preprocess.py``:
``clip_length = 30 * 16000``, ``clip_drop = 16000 // 2``):

* audio of at most 30 s is one chunk, however short;
* longer audio is cut every 480,000 samples; a trailing piece of 0.5 s
  (8,000 samples) or less is dropped, a longer one is kept;
* every chunk, the short last one included, is zero-padded to 30 s by the
  log-mel and gives the same number of tokens: 300 (600 as documented). The
  padded tail's tokens are kept, as MuFun keeps them (it never trims them).

So the token count depends on the number of chunks, not on the exact duration:
3 min → 6 chunks → 1,800 tokens; 10 s → 1 chunk → 300 tokens.
"""

from __future__ import annotations

import torch

from omni import trace
from omni.audio.io import SAMPLE_RATE
from omni.audio.whisper_mel import N_SAMPLES, pad_or_trim, whisper_log_mel

CHUNK_SAMPLES = N_SAMPLES               # 480,000: one Whisper window
MIN_TAIL_SAMPLES = SAMPLE_RATE // 2     # 8,000: a trailing piece must be longer than 0.5 s to be kept


class SegmentError(ValueError):
    """An audio segment [start, end] that does not fit the audio; the message gives the numbers."""


def segment_bounds(n_samples: int, segment: tuple[float, float] | list[float],
                   sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Sample indices [i0, i1) of ``segment`` = [start, end] seconds in audio of ``n_samples``."""
    if len(segment) != 2:
        raise SegmentError(f"a segment is [start, end] in seconds, got {segment!r}")
    start, end = float(segment[0]), float(segment[1])
    duration = n_samples / sample_rate
    if start < 0:
        raise SegmentError(f"segment start {start} s is negative")
    if end <= start:
        raise SegmentError(f"segment [{start}, {end}] s is empty or reversed (end must be > start)")
    if start >= duration:
        raise SegmentError(f"segment [{start}, {end}] s starts after the audio ends ({duration:.3f} s)")
    i0, i1 = int(start * sample_rate), int(round(end * sample_rate))
    if i1 > n_samples:
        raise SegmentError(f"segment [{start}, {end}] s ends after the audio ends ({duration:.3f} s, "
                           f"{n_samples:,} samples at {sample_rate} Hz)")
    return i0, i1


def select_segment(wave: torch.Tensor, segment: tuple[float, float] | list[float] | None,
                   sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """wave (T,) → wave[start·sr : end·sr], or ``wave`` itself when ``segment`` is None."""
    if segment is None:
        return wave
    i0, i1 = segment_bounds(wave.shape[-1], segment, sample_rate)
    return wave[..., i0:i1]


def chunk_lengths(n_samples: int) -> list[int]:
    """Lengths of the chunks MuFun cuts from ``n_samples`` samples (before zero-padding)."""
    if n_samples <= 0:
        raise ValueError(f"cannot chunk {n_samples} samples")
    if n_samples <= CHUNK_SAMPLES:
        return [n_samples]
    lengths = [min(CHUNK_SAMPLES, n_samples - i) for i in range(0, n_samples, CHUNK_SAMPLES)]
    return [n for n in lengths if n > MIN_TAIL_SAMPLES]


def split_chunks(wave: torch.Tensor) -> list[torch.Tensor]:
    """wave (T,) → list of chunks (≤ 480,000,), by :func:`chunk_lengths`."""
    if wave.dim() != 1:
        raise ValueError(f"split_chunks expects a mono waveform (T,), got {tuple(wave.shape)}")
    lengths = chunk_lengths(wave.shape[0])
    return [wave[i * CHUNK_SAMPLES: i * CHUNK_SAMPLES + n] for i, n in enumerate(lengths)]


def audio_token_count(n_samples: int, tokens_per_chunk: int) -> int:
    """How many audio tokens a waveform of ``n_samples`` becomes (chunks × tokens per chunk)."""
    return len(chunk_lengths(n_samples)) * tokens_per_chunk


def waveform_to_mels(wave: torch.Tensor, n_mels: int, segment=None) -> torch.Tensor:
    """wave (T,) 16 kHz → log-mel of each 30-second chunk (N, n_mels, 3000)."""
    wave = select_segment(wave, segment)
    chunks = split_chunks(wave)
    trace.record("audio.chunk", chunks[0], f"chunk 1 of {len(chunks)} (30 s = {CHUNK_SAMPLES:,} samples at most)")
    padded = torch.stack([pad_or_trim(c, CHUNK_SAMPLES) for c in chunks])       # (N, 480000)
    mels = whisper_log_mel(padded, n_mels)                                         # (N, F, 3000)
    return mels


def pool_and_concat(states: list[torch.Tensor | None], layers: tuple[int, ...], stride: int) -> torch.Tensor:
    """Average-pool each chosen hidden state over time by ``stride``, then concatenate the channels.

    states[i]: (B, T, C) → (B, T / stride, len(layers) · C). Same numbers as MuFun's
    concatenate-then-``AvgPool1d(stride, stride)`` (pooling is per channel).
    """
    chosen = [states[i] for i in layers]
    missing = [i for i, s in zip(layers, chosen) if s is None]
    if missing:
        raise ValueError(f"hidden states {missing} were not kept by the encoder")
    B, T, C = chosen[0].shape
    assert T % stride == 0, f"{T} positions are not divisible by the pooling stride {stride}"
    stacked = torch.stack(chosen)                                                   # (L, B, T, C)
    pooled = stacked.view(len(layers), B, T // stride, stride, C).mean(dim=3)       # (L, B, T/s, C)
    trace.record("features.pooled", pooled, f"each of {len(layers)} layers average-pooled by {stride}")
    features = torch.cat(list(pooled), dim=-1)                                      # (B, T/s, L·C)
    trace.record("features.concat", features, f"{len(layers)} layers concatenated on channels")
    return features
