"""ASR evaluation: character error rate on held-out sentences and on the held-out voice.

    omni eval audio --ckpt checkpoints/audio/export --data data/medium --split test

Two groups, both scored by greedy CTC decoding and the corpus CER of
:mod:`omni.cer` (lower-case, punctuation stripped, whitespace
collapsed — see that module):

* **held-out voice**: clips of ``split`` whose speaker never occurs in
  ``asr_train.jsonl``. In the synthetic world every test clip is spoken by the
  held-out voice (``card.json`` → ``voices.test_voices``), so this is the whole
  test split: new sentences *and* a new voice.
* **held-out sentences, training voices**: clips of ``split`` whose speaker is a
  training speaker. The world's test split has none, so for ``split="test"``
  this group comes from ``asr_val.jsonl`` instead (sentences held out from
  training, voices seen in training), and the metric's name says so.

A group with no clips is left out of the table rather than reported as 0.
Bad clips (unreadable, too short for CTC, ...) are counted by
:func:`omni.data.quality.load_checked` and reported as a row.
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni.data.manifest import read_manifest
from omni.data.quality import load_checked
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.models.asr import ASRConfig, ASRModel
from omni.training import load_exported
from omni.training.ctc import SpeechClips, transcribe_clips
from omni.training.stage import world_file
GOAL_CER = 0.10          # the cpu preset's goal in issue 6: CER ≤ 10 %


def _cer_metric(name: str, model, records: list, batch_size: int) -> Metric:
    hyps, _ = transcribe_clips(model, SpeechClips(records), batch_size)
    value = cer([r.text for r in records], hyps)
    return Metric(f"{name} [{len(records)} clips]", 100 * value, "%", f"≤ {100 * GOAL_CER:g} %", value <= GOAL_CER)


@torch.no_grad()
def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", batch_size: int = 16,
             max_clips: int | None = None, bad_data_threshold: float = 0.01) -> list[Metric]:
    """CER of the exported ASRModel in ``ckpt`` on ``data``'s ``split`` (see the module docstring)."""
    data = Path(data)
    model = load_exported(ckpt, ASRModel, ASRConfig).to(device).eval()
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

    metrics = []
    if seen_voice:
        metrics.append(_cer_metric(f"CER ({seen_from}: held-out sentences, training voices)", model, seen_voice,
                                   batch_size))
    if new_voice:
        voices = ", ".join(sorted({r.speaker for r in new_voice}))
        metrics.append(_cer_metric(f"CER ({split}: held-out voice {voices})", model, new_voice, batch_size))
    if not metrics:
        raise ValueError(f"{data}: no clips to score in asr_{split}.jsonl")
    metrics.append(Metric("bad clips skipped (by omni.data.quality)", float(bad), "clips"))
    return metrics
