"""The audio front end: file loading, resampling, bad input, and the tiny log-mel
recipe (seed 004, Part 3: 16,000 samples → (1, 100, 128)), checked against librosa."""

import math

import numpy as np
import pytest
import torch

from omni.audio import tiny_mel
from omni.audio.io import SAMPLE_RATE, AudioError, check_waveform, load_audio, resample
from omni.audio.tiny_mel import (HOP_LENGTH, LOG_FLOOR, MIN_SAMPLES, N_FFT, N_MELS, log_mel, log_mel_batch,
                                 log_mel_file, n_frames)


def tone(seconds, hz, sr, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(wave, sr):
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.argmax(spec) * sr / len(wave), spec


# ---------------------------------------------------------------- log-mel shapes
def test_one_second_is_100_frames_of_128_bins():
    wave = torch.from_numpy(tone(1.0, 440, SAMPLE_RATE))
    assert wave.shape == (16_000,)
    mel = log_mel(wave)
    assert mel.shape == (1, 100, 128)
    assert mel.dtype == torch.float32
    assert log_mel(wave[None].repeat(3, 1)).shape == (3, 100, 128)
    assert tiny_mel.FRAMES_PER_SECOND == 100 and (N_FFT, HOP_LENGTH, N_MELS) == (400, 160, 128)


@pytest.mark.parametrize("n,frames", [(16_000, 100), (16_159, 100), (16_160, 101), (15_999, 99),
                                      (MIN_SAMPLES, 1), (2_880_000, 18_000)])
def test_frame_count_is_samples_floor_div_hop(n, frames):
    assert n_frames(n) == frames == n // HOP_LENGTH
    if n <= 16_160:
        assert log_mel(torch.zeros(n)).shape == (1, frames, 128)


def test_centred_stft_gives_101_frames_and_the_recipe_drops_the_last():
    from omni.audio.mel import stft_power

    wave = torch.from_numpy(tone(1.0, 440, SAMPLE_RATE))
    assert stft_power(wave, N_FFT, HOP_LENGTH).shape == (201, 101)
    power = tiny_mel.mel_power(wave[None])
    full = (tiny_mel.filterbank() @ stft_power(wave, N_FFT, HOP_LENGTH)).T   # (101, 128)
    torch.testing.assert_close(power[0], full[:100])


def test_silence_sits_on_the_log_floor_and_a_tone_lights_its_bin():
    assert torch.all(log_mel(torch.zeros(16_000)) == math.log10(LOG_FLOOR))
    mel = log_mel(torch.from_numpy(tone(1.0, 1000, SAMPLE_RATE)))[0]          # (100, 128)
    fb = tiny_mel.filterbank()
    bin_1khz = round(1000 / (SAMPLE_RATE / N_FFT))                              # FFT bin 25
    assert int(mel[50].argmax()) == int(fb[:, bin_1khz].argmax())


def test_batch_of_different_lengths_equals_each_clip_alone():
    clips = [torch.from_numpy(tone(s, 300 + 100 * i, SAMPLE_RATE)) for i, s in enumerate((1.0, 0.37, 0.61))]
    mel, lengths = log_mel_batch(clips)
    assert mel.shape == (3, 100, 128)
    assert lengths.tolist() == [100, 37, 61]
    for i, c in enumerate(clips):
        torch.testing.assert_close(mel[i, : lengths[i]], log_mel(c)[0])
        assert torch.all(mel[i, lengths[i]:] == 0.0)


# ---------------------------------------------------------------- librosa agreement
@pytest.fixture(scope="module")
def librosa():
    return pytest.importorskip("librosa")


def test_filterbank_matches_librosa(librosa):
    ref = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)      # Slaney scale + norm
    ours = tiny_mel.filterbank().numpy()
    assert ours.shape == ref.shape == (128, 201)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)                  # measured: 3.7e-9


def test_spectrogram_matches_librosa(librosa):
    y = (0.3 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, window="hann",
                                         center=True, pad_mode="reflect", power=2.0, n_mels=N_MELS)
    assert ref.shape == (128, 101)                                             # librosa keeps the last frame
    ref = ref[:, :-1]
    ours = tiny_mel.mel_power(torch.from_numpy(y)[None])[0].numpy().T         # (128, 100)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6 * ref.max())    # measured: rel 2e-5
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=LOG_FLOOR, top_db=None)
    ours_db = 10 * log_mel(torch.from_numpy(y))[0].numpy().T
    np.testing.assert_allclose(ours_db, ref_db, rtol=0, atol=1e-3)             # dB; measured: 9e-5


# ---------------------------------------------------------------- bad waveforms
@pytest.mark.parametrize("wave,match", [
    (torch.zeros(0), "zero-length"),
    (torch.zeros(2, 0), "zero-length"),
    (torch.full((16_000,), float("nan")), "16000 of 16000 samples are NaN"),
    (torch.tensor([0.0] * 999 + [float("inf")]), "1 of 1000 samples are NaN or Inf"),
    (torch.zeros(MIN_SAMPLES - 1), "too short"),
    (torch.zeros(1, 1, 16_000), r"\(T,\) or \(B, T\)"),
])
def test_bad_waveforms_raise_audio_error(wave, match):
    with pytest.raises(AudioError, match=match):
        log_mel(wave, what="my clip")


def test_errors_name_the_clip_and_type():
    with pytest.raises(AudioError, match="my clip"):
        log_mel(torch.zeros(0), what="my clip")
    with pytest.raises(TypeError, match="ndarray"):
        log_mel(np.zeros(16_000, dtype=np.float32))
    with pytest.raises(AudioError, match="batch item 1"):
        log_mel_batch([torch.zeros(16_000), torch.full((500,), float("nan"))])
    with pytest.raises(AudioError, match="empty list"):
        log_mel_batch([])
    with pytest.raises(AudioError, match="NaN"):
        check_waveform(np.array([np.nan, np.nan], dtype=np.float32))


# ---------------------------------------------------------------- files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.wav"):
        load_audio(tmp_path / "nothere.wav")


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage that is not a wave file" * 10])
def test_corrupt_or_empty_file(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(path)


def test_zero_length_and_nan_files(tmp_path):
    import soundfile as sf

    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 1), dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="empty.wav: zero-length"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.full(800, np.nan, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: 800 of 800 samples are NaN"):
        load_audio(nan)
    with pytest.raises(AudioError, match="nan.wav"):
        log_mel_file(nan)


def test_stereo_44k_file_becomes_16k_mono_and_keeps_its_pitch(tmp_path):
    import soundfile as sf

    left, right = tone(0.5, 1000, 44_100), tone(0.5, 1000, 44_100, amp=0.1)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 44_100)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.shape == (8_000,)          # 22,050 frames × 16/44.1
    hz, _ = peak_hz(wave.numpy(), SAMPLE_RATE)
    assert abs(hz - 1000) < 4
    assert abs(float(wave[2000:6000].abs().max()) - 0.3) < 0.01             # mono = mean of 0.5 and 0.1
    assert log_mel_file(path).shape == (1, 50, 128)


def test_seed_example_three_minutes_44k_stereo_to_2_88_million_samples():
    seconds, sr = 180, 44_100
    frames = seconds * sr                                                     # 7,938,000 per channel
    left = tone(seconds, 440, sr)
    stereo = np.stack([left, 0.4 * left], axis=1)
    assert stereo.size == 15_876_000                                          # the seed's count (both channels)
    out = resample(stereo.mean(axis=1), sr, SAMPLE_RATE)
    assert out.shape == (2_880_000,) == (frames * SAMPLE_RATE // sr,)
    assert n_frames(len(out)) == 18_000                                       # 3 min of log-mel at 100 Hz


def test_resampling_is_band_limited_not_index_picking():
    # 10 kHz is above the 8 kHz Nyquist of 16 kHz: a real resampler removes it;
    # naive index picking folds it down to an alias at 6 kHz at full strength.
    x = tone(0.5, 10_000, 44_100)
    out = resample(x, 44_100, SAMPLE_RATE)
    naive = x[(np.arange(8_000) * 44_100 // SAMPLE_RATE)]
    assert np.abs(out[500:-500]).max() < 0.01
    assert np.abs(naive).max() > 0.4
    with pytest.raises(AudioError, match="mono"):
        resample(np.zeros((2, 10), dtype=np.float32), 44_100, SAMPLE_RATE)
    with pytest.raises(AudioError, match="positive"):
        resample(np.zeros(10, dtype=np.float32), 0, SAMPLE_RATE)
