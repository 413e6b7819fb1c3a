"""Held-out evaluation of the mufun stage: music-QA accuracy.

    omni eval mufun [--ckpt checkpoints/mufun/export] [--data data/medium] [--split test]

Each question of ``audio_qa_<split>.jsonl`` is asked as in training
(:mod:`omni.mufun.qa`: ``[BOS?] user: <audio> {question} assistant:``, the audio
cut into 30-second chunks and fused at the marker) and answered greedily with
the decoder's KV cache (:meth:`MuFunModel.generate`) until the end token. An
answer is right when it equals the reference after the normalisation of
:func:`omni.evaluation.omni_sft.normalize_answer` (lower case, characters other
than a–z and 0–9 → one space, trimmed). The issue sets no goal for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni.data.quality import load_checked
from omni.evaluation.metric import Metric
from omni.evaluation.omni_sft import QAResult, normalize_answer
from omni.mufun.model import MuFunModel
from omni.mufun.qa import load_qa_tokenizer, prompt_ids, record_mels
from omni.generation.sampling import SamplingConfig
from omni.exports import load_stage
from omni.checkpoint import export_dir
from omni.training.stage import world_file

MAX_NEW_TOKENS = 16


@torch.no_grad()
def music_qa_accuracy(model: MuFunModel, tok, records, max_new_tokens: int = MAX_NEW_TOKENS) -> QAResult:
    """Greedy answers to ``records`` (AudioQARecord) and how many equal the reference after normalising."""
    if not records:
        raise ValueError("no music-QA questions to evaluate")
    device = model.connector.linear1.weight.device
    sampling = SamplingConfig(temperature=0.0, max_new_tokens=max_new_tokens)
    correct, wrong = 0, []
    for r in records:
        ids = torch.tensor(prompt_ids(r.question, tok), device=device)                       # (T,) with -200
        mels = record_mels(r, model.cfg.whisper.n_mels).to(device)                          # (N, F, 3000)
        out = model.generate(ids, [mels], sampling=sampling, eos_id=tok.eos_id)
        got = tok.decode(out.tokens[0].tolist())
        if normalize_answer(got) == normalize_answer(r.answer):
            correct += 1
        else:
            wrong.append((r.id, r.answer, got))
    return QAResult(correct, len(records), wrong)


def evaluate(ckpt: Path = export_dir("mufun"), data: Path = Path("data/medium"), split: str = "test",
             device: str = "cpu", limit: int | None = None, max_new_tokens: int = MAX_NEW_TOKENS,
             **kw) -> list[Metric]:
    """Music-QA accuracy (%) of the export ``ckpt`` (MuFunModel + its tokenizer) on ``data``'s ``split``."""
    if kw:
        raise TypeError(f"mufun evaluate got unknown options {sorted(kw)}; it takes limit, max_new_tokens")
    ckpt = Path(ckpt)
    loaded = load_stage("mufun", ckpt, device)            # the same checks inference makes, tokenizer included
    model = loaded.model
    tok = load_qa_tokenizer(ckpt)
    records, _ = load_checked(world_file(data, f"audio_qa_{split}.jsonl"), "audio_qa")
    result = music_qa_accuracy(model, tok, records[:limit], max_new_tokens)
    return [Metric(name=f"music-QA accuracy ({split}, {result.total} questions)", value=result.accuracy, unit="%")]
