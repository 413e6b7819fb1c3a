"""Segment and chunk arithmetic (MuFun's rule), and the multi-layer pooling."""

import pytest
import torch

from omni.audio.whisper_mel import whisper_log_mel
from omni.mufun.audio import (CHUNK_SAMPLES, MIN_TAIL_SAMPLES, SegmentError, chunk_lengths, pool_and_concat,
                              segment_bounds, select_segment, split_chunks, waveform_to_mels)

SR = 16_000


def test_seed000_three_minutes_is_six_full_chunks():
    lengths = chunk_lengths(180 * SR)
    assert lengths == [480_000] * 6
    wave = torch.arange(180 * SR, dtype=torch.float32)
    chunks = split_chunks(wave)
    # seed 000 step 1.3: chunk k covers samples [480,000·k, 480,000·(k+1))
    assert [int(c[0]) for c in chunks] == [0, 480_000, 960_000, 1_440_000, 1_920_000, 2_400_000]


@pytest.mark.parametrize("n_samples,expected", [
    (1, [1]),                                     # ≤ 30 s: one chunk however short
    (CHUNK_SAMPLES, [CHUNK_SAMPLES]),
    (CHUNK_SAMPLES + MIN_TAIL_SAMPLES, [CHUNK_SAMPLES]),              # a 0.5 s tail is dropped
    (CHUNK_SAMPLES + MIN_TAIL_SAMPLES + 1, [CHUNK_SAMPLES, MIN_TAIL_SAMPLES + 1]),   # longer is kept
    (95 * SR, [CHUNK_SAMPLES] * 3 + [5 * SR]),
    (int(60.4 * SR), [CHUNK_SAMPLES] * 2),         # 0.4 s left over: dropped
])
def test_chunk_lengths(n_samples, expected):
    assert chunk_lengths(n_samples) == expected
    assert sum(map(len, split_chunks(torch.zeros(n_samples)))) == sum(expected)


def test_short_last_chunk_is_zero_padded_by_the_log_mel():
    wave = torch.randn(95 * SR, generator=torch.Generator().manual_seed(0)) * 0.1
    mels = waveform_to_mels(wave, n_mels=80)
    assert mels.shape == (4, 80, 3000)
    tail = torch.cat([wave[3 * CHUNK_SAMPLES:], torch.zeros(CHUNK_SAMPLES - 5 * SR)])
    assert torch.allclose(mels[3], whisper_log_mel(tail, 80), atol=1e-6)
    assert torch.allclose(mels[0], whisper_log_mel(wave[:CHUNK_SAMPLES], 80), atol=1e-6)


def test_segments_are_validated_against_the_duration():
    n = 180 * SR
    assert segment_bounds(n, [60.0, 120.0]) == (60 * SR, 120 * SR)   # seed 002: audio_start 60, audio_end 120
    assert segment_bounds(n, (0, 180)) == (0, n)
    wave = torch.arange(n, dtype=torch.float32)
    seg = select_segment(wave, [60.0, 120.0])
    assert seg.shape == (60 * SR,) and int(seg[0]) == 60 * SR
    assert chunk_lengths(seg.shape[0]) == [CHUNK_SAMPLES] * 2
    for bad, message in [([60, 200], "ends after the audio ends \\(180.000 s"),
                         ([-1, 10], "start -1.0 s is negative"),
                         ([30, 30], "empty or reversed"),
                         ([190, 200], "starts after the audio ends"),
                         ([1, 2, 3], "is \\[start, end\\]")]:
        with pytest.raises(SegmentError, match=message):
            segment_bounds(n, bad)


def test_pooling_matches_mufun_concat_then_avgpool():
    """MuFun concatenates [0, 7, 15, 32] then applies AvgPool1d(5, 5) over time; we pool then concatenate."""
    g = torch.Generator().manual_seed(1)
    states = [torch.randn(2, 30, 4, generator=g) for _ in range(5)]
    layers = (0, 1, 3, 4)
    ours = pool_and_concat(states, layers, stride=5)
    cat = torch.cat([states[i] for i in layers], dim=-1)                         # (B, T, 4C)
    ref = torch.nn.AvgPool1d(5, stride=5)(cat.permute(0, 2, 1)).permute(0, 2, 1)  # (B, T/5, 4C)
    assert ours.shape == (2, 6, 16)
    assert torch.allclose(ours, ref, atol=1e-6)
    with pytest.raises(ValueError, match="hidden states \\[3\\] were not kept"):
        pool_and_concat(states[:3] + [None, states[4]], layers, 5)
