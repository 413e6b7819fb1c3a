"""The audio front ends' rows of `make bench`: Whisper log-mel, the speech codec (RVQ), Griffin-Lim.

    python benchmarks/bench_frontends.py [--threads 1] [--reps 5]   (only these rows)

1. ``omni.audio.whisper_mel.whisper_log_mel`` against ``transformers``'
   ``WhisperFeatureExtractor`` (128 bins) on the same 30 s clip: speed ratio
   at a maximum difference ≤ 1e-4 (checked).
2. The speech stage's codec on that clip's speech mel (12.5 frames/s):
   ``RVQ.encode`` (mel → codes) and ``RVQ.decode`` (codes → mel), time per
   second of audio against real time.
3. Griffin-Lim (the vocoder, speech-mel STFT settings) against
   ``librosa.griffinlim``, per second of audio, at no worse spectral convergence
   (benchmarks/bench_griffin_lim.py has the details and a second setting).
"""

from __future__ import annotations


import numpy as np
import torch
from bench_griffin_lim import run as griffin_lim_run
from bench_griffin_lim import speechlike
from bench_thinker import time_pair
from table import Row, bench_main

from omni.audio.speech_mel import SpeechMelConfig, speech_mel
from omni.audio.whisper_mel import CHUNK_SECONDS, HOP_LENGTH, N_FFT, whisper_log_mel
from omni.models.rvq import RVQ, CodecConfig

MAX_MEL_DIFF = 1e-4


def rows(args) -> list[Row]:
    from transformers import WhisperFeatureExtractor

    out = []
    wave = speechlike(CHUNK_SECONDS)                                             # (480,000,) float32
    # --- 1. Whisper log-mel --------------------------------------------------------------------------------
    fe = WhisperFeatureExtractor(feature_size=128)
    x = torch.from_numpy(wave)
    ours = lambda: whisper_log_mel(x, n_mels=128)                                # noqa: E731
    theirs = lambda: fe(wave, sampling_rate=16_000, return_tensors="np")["input_features"][0]  # noqa: E731
    t_o, t_h = time_pair(ours, theirs, 1, args.reps)
    diff = float(np.abs(ours().numpy() - theirs()).max())
    out.append(Row(f"log-mel 30 s (whisper_mel, 128 bins), max diff {diff:.1e}", f"{t_o * 1e3:.1f} ms",
                   f"WhisperFeatureExtractor {t_h * 1e3:.1f} ms (its torch path)", t_h / t_o, 5.0,
                   ok=diff <= MAX_MEL_DIFF))
    # the bound: torch.stft alone (a real FFT of the 3001 frames), against the extractor's whole extraction
    window = torch.hann_window(N_FFT)
    stft = lambda: torch.stft(x, N_FFT, HOP_LENGTH, window=window, return_complex=True)   # noqa: E731
    t_s, t_h = time_pair(stft, theirs, 1, args.reps)
    out.append(Row("  bound: torch.stft alone (3001 frames of 400), no power, mel or log", f"{t_s * 1e3:.1f} ms",
                   f"WhisperFeatureExtractor {t_h * 1e3:.1f} ms", t_h / t_s, None))
    # with torch installed the extractor runs torch.stft, as we do; its numpy path is what it runs without torch
    padded = wave[None, :len(wave)]                                              # exactly 30 s: no padding
    numpy_path = lambda: fe._np_extract_fbank_features(padded, "cpu")[0]        # noqa: E731
    t_o, t_np = time_pair(ours, numpy_path, 1, args.reps)
    diff = float(np.abs(ours().numpy() - numpy_path()).max())
    out.append(Row(f"  same, against its numpy path (no torch), max diff {diff:.1e}", f"{t_o * 1e3:.1f} ms",
                   f"WhisperFeatureExtractor numpy {t_np * 1e3:.1f} ms", t_np / t_o, 5.0, ok=diff <= MAX_MEL_DIFF))

    # --- 2. the speech codec: RVQ encode / decode per second of audio ---------------------------------------
    cfg = SpeechMelConfig()
    torch.manual_seed(0)
    rvq = RVQ(CodecConfig()).eval()
    mel = speech_mel(x, cfg)[None]                                               # (1, T, 128)
    seconds = len(wave) / cfg.sample_rate
    with torch.no_grad():
        codes = rvq.encode(mel)
        t_enc, t_dec = time_pair(lambda: rvq.encode(mel), lambda: rvq.decode(codes), 3, args.reps * 4)
    for name, t in (("encode (mel → codes)", t_enc), ("decode (codes → mel)", t_dec)):
        out.append(Row(f"RVQ {name}, per second of audio", f"{t / seconds * 1e3:.3f} ms", "real time 1000 ms",
                       seconds / t, None))

    # --- 3. Griffin-Lim per second of audio -----------------------------------------------------------------
    r = griffin_lim_run(wave, cfg.n_fft, cfg.hop_length, 32, 0.99, args.reps)
    out.append(Row(f"Griffin-Lim 32 iters, n_fft {cfg.n_fft}, per second of audio (spectral conv. "
                   f"{r['sc_ours']:.3f} vs {r['sc_librosa']:.3f})", f"{r['ours_s'] / seconds * 1e3:.1f} ms",
                   f"librosa.griffinlim {r['librosa_s'] / seconds * 1e3:.1f} ms", r["librosa_s"] / r["ours_s"], 2.0,
                   ok=r["sc_ours"] <= r["sc_librosa"] * 1.02))
    return out


def main() -> None:
    bench_main(__doc__, rows)


if __name__ == "__main__":
    main()
