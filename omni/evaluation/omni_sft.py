"""Held-out evaluation of the omni_sft stage: does the model see and hear?

    omni eval omni_sft [--ckpt checkpoints/omni_sft/export] [--data data/medium] [--split test]

Each question of ``image_qa_<split>.jsonl`` / ``audio_qa_<split>.jsonl`` is asked
as a one-turn dialogue in the SFT template (:mod:`omni.data.dialogue`)::

    [BOS] user: <image> what colour is the star? assistant:   → greedy generation until EOS

through :func:`omni.pipelines.chat.generate_multimodal` (prefill once,
then the Thinker's KV cache). The split's questions were never trained on:
splits are decided by a hash of the item (docs/data.md).

An answer counts as right when its normalised form equals the reference's:
:func:`normalize_answer` lower-cases, turns every character other than a–z and
0–9 into a space, and collapses spaces (so ``"Red."`` = ``"red"``, ``"square
tone"`` = ``"square  tone"``). Nothing else is forgiven: ``"two"`` ≠ ``"2"``,
``"a red"`` ≠ ``"red"``.

What the table holds, so a score can be read against what it could be by luck:

* accuracy overall and **per question type** (:func:`omni.data.coverage.question_type`);
* the **blind baseline**: the same questions through the same model with a
  *blank* image (the scene's background, no objects) or a *silent* clip of the
  same length — what the model answers from the question alone;
* the **answer-prior baseline**: always the most frequent training answer of
  the question's type (from ``image_qa_train`` / ``audio_qa_train``);
* the CER of "what did the speaker say?" answered through the omni model on
  the split's ASR clips (the first :data:`ASR_CLIPS`).

A model that uses the image scores far above both baselines; a model that
ignores it scores the blind baseline. Goals (the cpu presets on data/medium):
image-QA ≥ 97 %, every image question type ≥ 90 %, audio-QA ≥ 90 %, and the
blind image accuracy at most 5 points above the answer prior.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from omni.audio.tiny_mel import LOG_FLOOR
from omni.data.coverage import question_type
from omni.data.dialogue import build_parts, load_mel
from omni.data.scenes import BACKGROUND
from omni.data.manifest import Message
from omni.data.quality import load_checked
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.images import load_image, normalize
from omni.models.omni_model import OmniModel
from omni.pipelines.chat import generate_multimodal
from omni.generation.sampling import SamplingConfig
from omni.tokenizer import AUDIO_MARKER, EOS_ID, IMAGE_MARKER, BPETokenizer
from omni.exports import load_stage
from omni.checkpoint import export_dir
from omni.training.stage import world_file

IMAGE_QA_GOAL = 97.0          # % on the held-out split, for the cpu presets on data/medium
IMAGE_TYPE_GOAL = 90.0        # % for every image question type
AUDIO_QA_GOAL = 90.0          # % on the held-out split
BLIND_MARGIN_GOAL = 5.0       # points: blank-image accuracy at most this far above the answer prior
ASR_CLIPS = 100               # "what did the speaker say?" clips scored through the omni model
ASR_MAX_NEW_TOKENS = 64       # a spoken sentence is ≤ 60 characters
MAX_NEW_TOKENS = 16           # answers are one or two words; a caption is not asked here
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalize_answer(text: str) -> str:
    """Lower-case; every run of characters outside a–z, 0–9 becomes one space; trimmed."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


@dataclass
class QAResult:
    correct: int
    total: int
    wrong: list[tuple[str, str, str]]     # (id, expected, got), for the report
    by_type: dict[str, list[int]] = field(default_factory=dict)   # question type → [correct, total]

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total

    def type_accuracy(self, qtype: str) -> float:
        right, total = self.by_type[qtype]
        return 100.0 * right / total


def load_omni(ckpt: str | Path, device: str = "cpu") -> tuple[OmniModel, BPETokenizer]:
    """The exported OmniModel (strict) and the tokenizer shipped with it."""
    ckpt = Path(ckpt)
    loaded = load_stage("omni_sft", ckpt, device)         # the same checks inference makes, tokenizer included
    return loaded.model, loaded.tokenizer


@torch.no_grad()
def answer(model: OmniModel, tok: BPETokenizer, question: str, image: torch.Tensor | None = None,
           mel: torch.Tensor | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """Ask one question about one image (3, S, S) or one clip (F, 128); greedy, KV-cached."""
    marker = IMAGE_MARKER if image is not None else AUDIO_MARKER if mel is not None else ""
    content = f"{marker}\n{question}" if marker else question
    parts = build_parts([Message("user", content)], tok, images=[image] if image is not None else [],
                        mels=[mel] if mel is not None else []).parts
    device = model.thinker.tok_emb.weight.device
    fusion = model.fuse_parts([(kind, x[None].to(device)) for kind, x in parts])     # (1, T, C)
    out = generate_multimodal(model, fusion, SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens),
                              eos_id=EOS_ID)
    return tok.decode(out.tokens[0].tolist())


def blank_image(size: int) -> torch.Tensor:
    """The scenes' background with no object on it, normalised (3, size, size): the blind baseline's picture."""
    import numpy as np

    return normalize(np.full((size, size, 3), BACKGROUND, dtype=np.uint8))


def silent_mel(mel: torch.Tensor) -> torch.Tensor:
    """A silent clip's log-mel of the same length as ``mel`` (F, 128): every bin at the log floor."""
    return torch.full_like(mel, math.log10(LOG_FLOOR))


def qa_accuracy(model: OmniModel, tok: BPETokenizer, records: Sequence, kind: str,
                max_new_tokens: int = MAX_NEW_TOKENS, blind: bool = False) -> QAResult:
    """Accuracy over image-QA (``kind="image"``) or audio-QA (``kind="audio"``) records.

    ``blind=True`` asks the same questions with a blank image / a silent clip
    of the same length instead of the real medium.
    """
    if not records:
        raise ValueError(f"no {kind}-QA questions to evaluate")
    size = model.cfg.vision.image_size
    result = QAResult(0, len(records), [])
    for r in records:
        if kind == "image":
            pixels = blank_image(size) if blind else load_image(r.image, size=size)
            got = answer(model, tok, r.question, image=pixels, max_new_tokens=max_new_tokens)
        else:
            mel = load_mel(r.audio, r.segment)
            got = answer(model, tok, r.question, mel=silent_mel(mel) if blind else mel,
                         max_new_tokens=max_new_tokens)
        right = normalize_answer(got) == normalize_answer(r.answer)
        tally = result.by_type.setdefault(question_type(r.question), [0, 0])
        tally[0] += right
        tally[1] += 1
        if right:
            result.correct += 1
        else:
            result.wrong.append((r.id, r.answer, got))
    return result


def answer_prior(train_records: Sequence) -> dict[str, str]:
    """Question type → its most frequent training answer (ties: the first in sorted order)."""
    answers: dict[str, Counter] = {}
    for r in train_records:
        answers.setdefault(question_type(r.question), Counter())[normalize_answer(r.answer)] += 1
    return {q: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for q, c in answers.items()}


def prior_accuracy(prior: dict[str, str], records: Sequence) -> float:
    """% of ``records`` answered right by always giving the prior's answer for the question's type."""
    right = sum(prior.get(question_type(r.question)) == normalize_answer(r.answer) for r in records)
    return 100.0 * right / len(records)


def asr_cer(model: OmniModel, tok: BPETokenizer, records: Sequence) -> float:
    """Corpus CER (%) of "what did the speaker say?" answered by the omni model (greedy)."""
    hyps = [answer(model, tok, "what did the speaker say?", mel=load_mel(r.audio), max_new_tokens=ASR_MAX_NEW_TOKENS)
            for r in records]
    return 100.0 * cer([r.text for r in records], hyps)


def _qa_metrics(kind: str, split: str, result: QAResult, blind: QAResult, prior: float,
                overall_goal: float, type_goal: float | None, blind_goal: float | None) -> list[Metric]:
    """Overall, per-type, blind and prior rows for one kind of question."""
    rows = [Metric(f"{kind}-QA accuracy ({split}, {result.total} questions)", result.accuracy, "%",
                   f"≥ {overall_goal:g} %", result.accuracy >= overall_goal)]
    for qtype in sorted(result.by_type):
        acc, n = result.type_accuracy(qtype), result.by_type[qtype][1]
        rows.append(Metric(f"  {kind}-QA · {qtype} [{n}] (blind {blind.type_accuracy(qtype):.0f} %)", acc, "%",
                           f"≥ {type_goal:g} %" if type_goal is not None else "",
                           acc >= type_goal if type_goal is not None else None))
    what = "blank image" if kind == "image" else "silent clip"
    rows.append(Metric(f"{kind}-QA blind baseline (same questions, {what})", blind.accuracy, "%"))
    rows.append(Metric(f"{kind}-QA answer-prior baseline (most frequent training answer per type)", prior, "%"))
    margin = blind.accuracy - prior
    rows.append(Metric(f"{kind}-QA blind − answer prior", margin, "points",
                       f"≤ {blind_goal:g} points" if blind_goal is not None else "",
                       margin <= blind_goal if blind_goal is not None else None))
    return rows


def evaluate(ckpt: Path = export_dir("omni_sft"), data: Path = Path("data/medium"), split: str = "test",
             device: str = "cpu", limit: int | None = None, max_new_tokens: int = MAX_NEW_TOKENS,
             asr_clips: int = ASR_CLIPS, **kw) -> list[Metric]:
    """The table of the module docstring for the export ``ckpt`` on ``data``'s ``split``.

    ``limit`` asks only the first N questions of each kind (None: all); ``asr_clips``
    caps the spoken sentences transcribed through the omni model (0: none).
    """
    if kw:
        raise TypeError(f"omni_sft evaluate got unknown options {sorted(kw)}; "
                        f"it takes limit, max_new_tokens, asr_clips")
    model, tok = load_omni(ckpt, device)
    metrics = []
    goals = {"image": (IMAGE_QA_GOAL, IMAGE_TYPE_GOAL, BLIND_MARGIN_GOAL), "audio": (AUDIO_QA_GOAL, None, None)}
    for kind, task in (("image", "image_qa"), ("audio", "audio_qa")):
        records, _ = load_checked(world_file(data, f"{task}_{split}.jsonl"), task)
        records = records[:limit]
        train, _ = load_checked(world_file(data, f"{task}_train.jsonl"), task)
        result = qa_accuracy(model, tok, records, kind, max_new_tokens)
        blind = qa_accuracy(model, tok, records, kind, max_new_tokens, blind=True)
        metrics += _qa_metrics(kind, split, result, blind, prior_accuracy(answer_prior(train), records), *goals[kind])
    if asr_clips:
        clips, _ = load_checked(world_file(data, f"asr_{split}.jsonl"), "asr")
        clips = clips[:asr_clips]
        if clips:
            metrics.append(Metric(f"ASR through the omni model: CER ({split}, {len(clips)} clips, "
                                  f"\"what did the speaker say?\")", asr_cer(model, tok, clips), "%"))
    return metrics
