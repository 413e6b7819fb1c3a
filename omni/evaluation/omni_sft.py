"""Held-out evaluation of the omni_sft stage: image-QA and audio-QA accuracy.

    omni eval omni_sft [--ckpt checkpoints/omni_sft/export] [--data data/medium] [--split test]

Each question of ``image_qa_<split>.jsonl`` / ``audio_qa_<split>.jsonl`` is asked
as a one-turn dialogue in the SFT template (:mod:`omni.data.dialogue`)::

    [BOS] user: <image> what colour is the star? assistant:   → greedy generation until EOS

through :func:`omni.pipelines.multimodal.generate_multimodal` (prefill once,
then the Thinker's KV cache). The split's questions were never trained on:
splits are decided by a hash of the item (docs/data.md).

An answer counts as right when its normalised form equals the reference's:
:func:`normalize_answer` lower-cases, turns every character other than a–z and
0–9 into a space, and collapses spaces (so ``"Red."`` = ``"red"``, ``"square
tone"`` = ``"square  tone"``). Nothing else is forgiven: ``"two"`` ≠ ``"2"``,
``"a red"`` ≠ ``"red"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from omni.data.dialogue import build_parts, load_mel
from omni.data.manifest import AUDIO_MARKER, IMAGE_MARKER, Message
from omni.data.quality import load_checked
from omni.evaluation.metric import Metric
from omni.images import load_image
from omni.models.omni_model import OmniConfig, OmniModel
from omni.pipelines.multimodal import generate_multimodal
from omni.pipelines.sampling import SamplingConfig
from omni.tokenizer import EOS_ID, BPETokenizer
from omni.training import load_exported
from omni.training.stage import export_dir, world_file

IMAGE_QA_GOAL = 95.0          # % on the held-out split, for the cpu preset (issue 6)
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

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total


def load_omni(ckpt: str | Path, device: str = "cpu") -> tuple[OmniModel, BPETokenizer]:
    """The exported OmniModel (strict) and the tokenizer shipped with it."""
    ckpt = Path(ckpt)
    model = load_exported(ckpt, OmniModel, OmniConfig).to(device).eval()
    return model, BPETokenizer(ckpt / "tokenizer.model")


@torch.no_grad()
def answer(model: OmniModel, tok: BPETokenizer, question: str, image: torch.Tensor | None = None,
           mel: torch.Tensor | None = None, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
    """Ask one question about one image (3, S, S) or one clip (F, 128); greedy, KV-cached."""
    marker = IMAGE_MARKER if image is not None else AUDIO_MARKER if mel is not None else ""
    content = f"{marker}\n{question}" if marker else question
    parts, _, _ = build_parts([Message("user", content)], tok, images=[image] if image is not None else [],
                              mels=[mel] if mel is not None else [])
    device = model.thinker.tok_emb.weight.device
    fusion = model.fuse_parts([(kind, x[None].to(device)) for kind, x in parts])     # (1, T, C)
    out = generate_multimodal(model, fusion, SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens),
                              eos_id=EOS_ID)
    return tok.decode(out.tokens[0].tolist())


def qa_accuracy(model: OmniModel, tok: BPETokenizer, records: Sequence, kind: str,
                max_new_tokens: int = MAX_NEW_TOKENS) -> QAResult:
    """Accuracy over image-QA (``kind="image"``) or audio-QA (``kind="audio"``) records."""
    if not records:
        raise ValueError(f"no {kind}-QA questions to evaluate")
    size = model.cfg.vision.image_size
    correct, wrong = 0, []
    for r in records:
        if kind == "image":
            got = answer(model, tok, r.question, image=load_image(r.image, size=size), max_new_tokens=max_new_tokens)
        else:
            got = answer(model, tok, r.question, mel=load_mel(r.audio, r.segment), max_new_tokens=max_new_tokens)
        if normalize_answer(got) == normalize_answer(r.answer):
            correct += 1
        else:
            wrong.append((r.id, r.answer, got))
    return QAResult(correct, len(records), wrong)


def evaluate(ckpt: Path = export_dir("omni_sft"), data: Path = Path("data/medium"), split: str = "test",
             device: str = "cpu", limit: int | None = None, max_new_tokens: int = MAX_NEW_TOKENS,
             **kw) -> list[Metric]:
    """Image-QA and audio-QA accuracy (%) of the export ``ckpt`` on ``data``'s ``split``.

    ``limit`` asks only the first N questions of each kind (None: all).
    """
    if kw:
        raise TypeError(f"omni_sft evaluate got unknown options {sorted(kw)}; it takes limit, max_new_tokens")
    model, tok = load_omni(ckpt, device)
    metrics = []
    for kind, task in (("image", "image_qa"), ("audio", "audio_qa")):
        records, _ = load_checked(world_file(data, f"{task}_{split}.jsonl"), task)
        result = qa_accuracy(model, tok, records[:limit], kind, max_new_tokens)
        goal = kind == "image"
        metrics.append(Metric(name=f"{kind}-QA accuracy ({split}, {result.total} questions)",
                              value=result.accuracy, unit="%", goal=f"≥ {IMAGE_QA_GOAL:g} %" if goal else "",
                              met=result.accuracy >= IMAGE_QA_GOAL if goal else None))
    return metrics
