"""ASR evaluation: CER and WER per voice, on held-out voices and on held-out sentences of training voices.

    omni eval audio --ckpt checkpoints/audio/export --data data/medium --split test [--decode greedy|beam|both]

Two groups, scored with the corpus CER and WER of :mod:`omni.cer`
(lower-case, punctuation stripped, whitespace collapsed — see that module):

* **held-out voices**: clips of ``split`` whose speaker never occurs in
  ``asr_train.jsonl``. In the synthetic world every test clip is spoken by a
  held-out voice (``card.json`` → ``voices.test_voices``), so this is the whole
  test split: new sentences *and* new voices.
* **held-out sentences, training voices**: clips of ``split`` whose speaker is a
  training speaker. The world's test split has none, so for ``split="test"``
  this group comes from ``asr_val.jsonl`` instead (sentences held out from
  training, voices seen in training), and the metric's name says so.

Each group gets a CER row (with the goal of issue 13), a WER row, and a CER row
per voice. ``decode`` names the CTC decoders (:mod:`omni.models.ctc_decode`):
``greedy`` (the default of training and ``omni asr``), ``beam`` (prefix beam
search with a character 6-gram trained on the world's *training* text:
``corpus_train.txt`` and the ``asr_train.jsonl`` transcripts, never a held-out
sentence), or ``both``, side by side from one forward pass.

A group with no clips is left out of the table rather than reported as 0.
Bad clips (unreadable, too short for CTC, ...) are counted by
:func:`omni.data.quality.load_checked` and reported as a row.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from omni.data.manifest import read_manifest
from omni.data.quality import load_checked
from omni.cer import cer, wer
from omni.evaluation.metric import Metric
from omni.models.ctc_decode import BeamConfig, CharNgramLM, beam_decode, greedy_decode
from omni.tokenizer import CharVocab
from omni.exports import load_stage
from omni.training.ctc import SpeechClips, transcribe_clips
from omni.training.stage import world_file

GOAL_HELD_OUT = 0.08          # issue 13, cpu preset: held-out voices together ≤ 8 % ...
GOAL_HELD_OUT_VOICE = 0.12    # ... and each held-out voice ≤ 12 %
GOAL_SEEN = 0.05              # held-out sentences of training voices ≤ 5 %
LM_ORDER = 6
BEAM = BeamConfig(beam=32, alpha=1.0, beta=2.0)    # chosen on the first 200 val clips of data/medium (docs/training.md)
DECODES = {"greedy": ("greedy",), "beam": ("beam",), "both": ("greedy", "beam")}


def training_text_lm(data: Path, order: int = LM_ORDER) -> CharNgramLM:
    """The character n-gram of the world's training text (never a val or test sentence)."""
    lines = [r.text for r in read_manifest(world_file(data, "asr_train.jsonl"), "asr")]
    corpus = data / "corpus_train.txt"
    if corpus.is_file():
        lines += corpus.read_text(encoding="utf-8").splitlines()
    return CharNgramLM.train(lines, order=order)


def decoders(names: tuple[str, ...], data: Path) -> dict:
    vocab = CharVocab()
    out = {}
    for name in names:
        if name == "greedy":
            out[name] = partial(greedy_decode, vocab=vocab)
        elif name == "beam":
            out[name] = partial(beam_decode, vocab=vocab, cfg=BEAM, lm=training_text_lm(data))
        else:
            raise ValueError(f"unknown CTC decoder {name!r}; choose greedy or beam")
    return out


def _group_rows(label: str, records: list, hyps: dict[str, list[str]], goal: float, voice_goal: float | None
                ) -> list[Metric]:
    """CER and WER of the whole group per decoder, then the CER of each voice per decoder."""
    refs = [r.text for r in records]
    rows = []
    for name, h in hyps.items():
        value = cer(refs, h)
        rows.append(Metric(f"CER ({label}, {name}) [{len(records)} clips]", 100 * value, "%",
                           f"≤ {100 * goal:g} %", value <= goal))
        rows.append(Metric(f"WER ({label}, {name})", 100 * wer(refs, h), "%"))
    for voice in sorted({r.speaker for r in records}):
        idx = [i for i, r in enumerate(records) if r.speaker == voice]
        for name, h in hyps.items():
            value = cer([refs[i] for i in idx], [h[i] for i in idx])
            goal_text, met = ((f"≤ {100 * voice_goal:g} %", value <= voice_goal) if voice_goal is not None
                              else ("", None))
            rows.append(Metric(f"CER voice {voice} ({name}) [{len(idx)} clips]", 100 * value, "%", goal_text, met))
    return rows


@torch.no_grad()
def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", batch_size: int = 16,
             max_clips: int | None = None, bad_data_threshold: float = 0.01, decode: str = "both") -> list[Metric]:
    """CER/WER of the exported ASRModel in ``ckpt`` on ``data``'s ``split`` (see the module docstring)."""
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {decode!r}")
    data = Path(data)
    model = load_stage("audio", ckpt, device).model
    train_speakers = {r.speaker for r in read_manifest(world_file(data, "asr_train.jsonl"), "asr")}
    records, report = load_checked(world_file(data, f"asr_{split}.jsonl"), "asr", threshold=bad_data_threshold)
    records = records[:max_clips]

    new_voice = [r for r in records if r.speaker not in train_speakers]
    seen_voice, seen_from = [r for r in records if r.speaker in train_speakers], split
    bad = len(report.bad)
    if not seen_voice and split != "val":
        seen_from = "val"
        seen_voice, val_report = load_checked(world_file(data, "asr_val.jsonl"), "asr", threshold=bad_data_threshold)
        seen_voice = [r for r in seen_voice if r.speaker in train_speakers][:max_clips]
        bad += len(val_report.bad)
    if not seen_voice and not new_voice:
        raise ValueError(f"{data}: no clips to score in asr_{split}.jsonl")

    decode_fns = decoders(DECODES[decode], data)
    metrics = []
    if new_voice:
        hyps, _ = transcribe_clips(model, SpeechClips(new_voice), batch_size, decoders=decode_fns)
        metrics += _group_rows(f"{split}: held-out voices", new_voice, hyps, GOAL_HELD_OUT, GOAL_HELD_OUT_VOICE)
    if seen_voice:
        hyps, _ = transcribe_clips(model, SpeechClips(seen_voice), batch_size, decoders=decode_fns)
        metrics += _group_rows(f"{seen_from}: held-out sentences, training voices", seen_voice, hyps, GOAL_SEEN, None)
    metrics.append(Metric("bad clips skipped (by omni.data.quality)", float(bad), "clips"))
    return metrics
