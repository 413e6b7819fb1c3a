"""Choose Griffin-Lim by what the ASR hears: CER of Griffin-Lim(true speech mel) over analysis and settings.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/tune_griffin_lim.py --data data/medium \
        --asr checkpoints/audio/export [--split test] [--clips 100] [--analyses 5120:5120,5120:2560]
        [--iterations 32,64,128] [--momenta 0,0.5,0.99] [--inits random,zero]

For the first ``--clips`` TTS sentences of the split, every combination of

* the speech mel's analysis window / FFT size (hop 1280, 128 bins, 12.5 Hz kept: Part 5's shapes hold),
* Griffin-Lim's iterations, momentum and initial phase,

vocodes each clip's true speech mel and prints the ASR's CER (the same normaliser as every stage), with the
CER of the original clips on the first line. Writes nothing; the table is the measurement docs/speech.md cites.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from omni.audio.griffin_lim import VocoderConfig, mel_to_audio
from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig
from omni.cer import cer
from omni.evaluation.talker import load_asr, transcribe
from omni.training.speech import clip_mels, split_records

ANALYSES = ("5120:5120", "5120:2560", "2560:2560")     # n_fft:win_length; hop stays 1280
ITERATIONS = (32, 64, 128)
MOMENTA = (0.0, 0.5, 0.99)
INITS = ("random", "zero")


def _list(kind):
    return lambda text: [kind(x) for x in text.split(",")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="synthetic-world folder")
    p.add_argument("--asr", required=True, help="the ASR export that judges (the audio stage's)")
    p.add_argument("--split", default="test")
    p.add_argument("--clips", type=int, default=100)
    p.add_argument("--analyses", type=_list(str), default=list(ANALYSES), help="n_fft:window,...")
    p.add_argument("--iterations", type=_list(int), default=list(ITERATIONS))
    p.add_argument("--momenta", type=_list(float), default=list(MOMENTA))
    p.add_argument("--inits", type=_list(str), default=list(INITS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    records = split_records(args.data, ["tts"], args.split, print)[:args.clips]
    texts = [r.text for r in records]
    asr = load_asr(args.asr, "cpu")
    original = 100 * cer(texts, transcribe(asr, [load_audio(r.audio) for r in records]))
    print(f"original clips: CER {original:.1f} % ({len(records)} {args.split} sentences, ASR {args.asr})")
    print("| n_fft | window | iterations | momentum | init | CER | s/clip |\n|---:|---:|---:|---:|---|---:|---:|")
    for analysis in args.analyses:
        n_fft, win = (int(x) for x in analysis.split(":"))
        mel_cfg = SpeechMelConfig(n_fft=n_fft, win_length=win)
        mels = clip_mels(records, mel_cfg)
        for n_iter, momentum, init in itertools.product(args.iterations, args.momenta, args.inits):
            t0 = time.perf_counter()
            waves = [mel_to_audio(m, mel_cfg, VocoderConfig(n_iter=n_iter, momentum=momentum, init=init))
                     for m in mels]
            per_clip = (time.perf_counter() - t0) / len(mels)
            got = 100 * cer(texts, transcribe(asr, waves))
            print(f"| {n_fft} | {win} | {n_iter} | {momentum:g} | {init} | {got:.1f} % | {per_clip:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
