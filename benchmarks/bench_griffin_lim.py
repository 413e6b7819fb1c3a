"""Our torch Griffin-Lim against ``librosa.griffinlim`` on the same magnitude spectrogram.

    PYTHONPATH=. python benchmarks/bench_griffin_lim.py [--seconds 24.08] [--n-iter 32] [--reps 3]

Both run fast Griffin-Lim with momentum 0.99, random initial phase, the same
number of iterations, on |STFT| of the same speech-like signal (a glottal pulse
train with a gliding pitch through moving formants, syllable-rate loudness and
noise bursts), with identical STFT settings: periodic Hann, zero padding,
librosa's ``center=True`` framing (our :class:`Framing` with pad = n_fft // 2).
Two settings are run: the speech mel's (n_fft = win = 5120, hop 1280) and a
common short-window one (n_fft = win = 1024, hop 256).

Printed per setting: the median wall time of each, the speed ratio
(librosa / ours; goal ≥ 2), and the spectral convergence
‖S − |STFT(y)|‖ / ‖S‖ of each result (goal: ours no worse).
librosa is a benchmark/test extra only (pip install -e ".[test]").
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from omni.audio.griffin_lim import griffin_lim, spectral_convergence
from omni.audio.speech_mel import Framing

SR = 16_000


def speechlike(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A deterministic voiced/unvoiced signal with speech-like spectra (float32, peak 0.9)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)   # gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = np.zeros_like(t)
    for h in range(1, 40):                                                        # harmonics under formants
        fh = h * f0
        gain = sum(np.exp(-0.5 * ((fh - (fc + 200 * np.sin(2 * np.pi * r * t))) / bw) ** 2)
                   for fc, bw, r in ((600, 120, 2.3), (1500, 180, 1.7), (2600, 250, 1.1)))
        voiced += np.where(fh < sr / 2, gain / h ** 0.5, 0.0) * np.sin(h * phase)
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2                       # ~4 syllables/s
    noise = rng.standard_normal(t.size) * (np.sin(2 * np.pi * 1.3 * t) > 0.8)       # fricative bursts
    x = voiced * syllables + 0.05 * noise
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def median_time(fn, reps: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(wave: np.ndarray, n_fft: int, hop: int, n_iter: int, momentum: float, reps: int) -> dict:
    """Print and return the times and spectral convergences of both (``make bench`` uses the return)."""
    import librosa

    framing = Framing(n_fft, hop, n_fft, pad=n_fft // 2)                       # librosa's center=True
    S_np = np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann",
                               center=True, pad_mode="constant")).astype(np.float32)   # (F, frames)
    S = framing.stft_frames(torch.from_numpy(wave)).abs()                          # (frames, F)
    gap = float(np.abs(S.numpy().T - S_np).max() / S_np.max())
    assert gap < 1e-4, f"our STFT and librosa's differ by {gap:.2e} (relative): settings are not the same"

    def ours(seed=0, init="random"):
        gen = torch.Generator().manual_seed(seed)
        return griffin_lim(S, framing, n_iter, momentum, length=len(wave), generator=gen, init=init)

    def theirs(seed=0, init="random"):
        return librosa.griffinlim(S_np, n_iter=n_iter, hop_length=hop, win_length=n_fft, n_fft=n_fft,
                                  window="hann", center=True, length=len(wave), pad_mode="constant",
                                  momentum=momentum, init=init, random_state=seed)

    def sc(y) -> float:
        return spectral_convergence(S, torch.as_tensor(np.asarray(y, dtype=np.float32)), framing)

    ours()                                                                          # warm-up (caches, allocator)
    t_ours, _ = median_time(ours, reps)
    t_lib, _ = median_time(theirs, reps)
    print(f"n_fft={n_fft} hop={hop} frames={S.shape[0]} iters={n_iter} momentum={momentum}")
    print(f"  time    ours {t_ours * 1e3:8.1f} ms   librosa {t_lib * 1e3:8.1f} ms   "
          f"speed ratio {t_lib / t_ours:5.2f}×")
    # same start, so the same algorithm must land on the same spectral convergence
    sc_ours, sc_lib = sc(ours(init="zero")), sc(theirs(init=None))
    print(f"  spectral convergence, zero initial phase:    ours {sc_ours:.4f}   librosa {sc_lib:.4f}")
    # random starts differ between the two RNGs: compare the mean over seeds
    seeds = range(3)
    sc_ours = statistics.mean(sc(ours(s)) for s in seeds)
    sc_lib = statistics.mean(sc(theirs(s)) for s in seeds)
    print(f"  spectral convergence, random phase (mean of {len(seeds)} seeds): ours {sc_ours:.4f}   "
          f"librosa {sc_lib:.4f}")
    return {"ours_s": t_ours, "librosa_s": t_lib, "sc_ours": sc_ours, "sc_librosa": sc_lib}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=24.08, help="signal length (24.08 s = 301 speech frames)")
    ap.add_argument("--n-iter", type=int, default=32)
    ap.add_argument("--momentum", type=float, default=0.99)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    wave = speechlike(args.seconds)
    print(f"signal: {len(wave):,} samples @ {SR} Hz ({len(wave) / SR:.2f} s); torch threads "
          f"{torch.get_num_threads()}")
    for n_fft, hop in ((5120, 1280), (1024, 256)):
        run(wave, n_fft, hop, args.n_iter, args.momentum, args.reps)


if __name__ == "__main__":
    main()
