"""Music question answering for MuFun: tokenizers, the prompt, and (ids, labels, mels) examples.

Shared by ``train/mufun.py`` and ``omni/evaluation/mufun.py``::

    record (audio, question, answer, segment)
      ──load_audio, [start, end], 30 s chunks, whisper_log_mel──▶ mels (N, F, 3000)
      "user: <audio>\\n{question} assistant:" ──tokenize around <audio>──▶ [BOS?] … -200 … (the marker)
      answer ──▶ pieces + EOS
      ids = prompt + answer; labels = -100 on the prompt (and so on the marker), answer ids on the answer

The prompt is the omni stack's chat template (:mod:`omni.data.dialogue`), so
the synthetic world's questions read the same to both models. Once fused
(:func:`omni.mufun.fusion.fuse`), each marker becomes the audio's
``N · tokens_per_chunk`` embeddings, labelled -100.

Tokenizers. Qwen3's own tokenizer is a 151,646-piece byte-level BPE that does
not ship with this project and is never downloaded; the tiny configuration
uses the project's shared SentencePiece BPE as a stand-in (:class:`SharedBPE`:
BOS first, EOS after each answer). A real Qwen tokenizer folder
(``tokenizer.json``) is read through the ``tokenizers`` package
(:class:`QwenTokenizer`: no BOS, ``<|endoftext|>`` as the end token, as in
Qwen3-Base). Qwen's chat template (``<|im_start|>user …``) is *not* applied:
both tokenizers see the plain template above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from omni.audio.io import load_audio
from omni.data.dialogue import ASSISTANT_PREFIX, USER_PREFIX
from omni.mufun.audio import waveform_to_mels
from omni.mufun.fusion import AUDIO_MARKER, tokenize_with_audio, training_example
from omni.tokenizer import BOS_ID, EOS_ID, BPETokenizer

QWEN_EOS = "<|endoftext|>"      # Qwen3-Base's end of text (its config.json eos_token_id)


class SharedBPE:
    """The omni stack's SentencePiece BPE, standing in for Qwen's tokenizer in the tiny configuration."""

    def __init__(self, path: str | os.PathLike):
        self.tok = BPETokenizer(path)
        self.path = Path(path)
        self.bos_id, self.eos_id = BOS_ID, EOS_ID

    @property
    def vocab_size(self) -> int:
        return self.tok.vocab_size

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_bos=False)

    def decode(self, ids) -> str:
        return self.tok.decode(ids)

    def describe(self) -> str:
        return f"shared BPE {self.path} ({self.vocab_size} pieces; stand-in for Qwen's tokenizer)"


class QwenTokenizer:
    """A real Qwen tokenizer folder (``tokenizer.json``) through the ``tokenizers`` package; no network."""

    def __init__(self, folder: str | os.PathLike):
        from omni.checkpoint import CheckpointError
        from omni.mufun.loading import load_tokenizer

        self.tok = load_tokenizer(folder)
        self.path = Path(folder)
        self.bos_id = None                       # Qwen prepends nothing
        self.eos_id = self.tok.token_to_id(QWEN_EOS)
        if self.eos_id is None:
            raise CheckpointError(f"{folder}: tokenizer.json has no {QWEN_EOS!r} token (is it a Qwen tokenizer?)")

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids if int(i) != self.eos_id])

    def describe(self) -> str:
        return f"Qwen tokenizer {self.path} ({self.vocab_size} pieces)"


def load_qa_tokenizer(folder: str | os.PathLike) -> SharedBPE | QwenTokenizer:
    """The tokenizer an export ships: ``tokenizer.model`` (shared BPE) or ``tokenizer.json`` (Qwen)."""
    folder = Path(folder)
    if (folder / "tokenizer.model").is_file():
        return SharedBPE(folder / "tokenizer.model")
    if (folder / "tokenizer.json").is_file():
        return QwenTokenizer(folder)
    raise FileNotFoundError(f"{folder} holds neither tokenizer.model (shared BPE) nor tokenizer.json (Qwen)")


def prompt_ids(question: str, tok) -> list[int]:
    """``[BOS?] user: <audio> {question} assistant:`` with -200 where the marker stands."""
    text = f"{USER_PREFIX}{AUDIO_MARKER}\n{question}{ASSISTANT_PREFIX}"
    ids = tokenize_with_audio(text, tok.encode)
    return ([tok.bos_id] if tok.bos_id is not None else []) + ids


def record_mels(record, n_mels: int) -> torch.Tensor:
    """The record's audio (or its segment) → log-mel of each 30-second chunk (N, F, 3000)."""
    return waveform_to_mels(load_audio(record.audio), n_mels, record.segment)


@dataclass
class QAExample:
    ids: torch.Tensor        # (T,) prompt + answer ids, -200 at the <audio> marker
    labels: torch.Tensor     # (T,) -100 on the prompt, the answer's ids (and EOS) on the answer
    mels: torch.Tensor       # (N, F, 3000) the audio's chunks


class MusicQADataset:
    """Map-style ``audio_qa`` records → :class:`QAExample` (audio decoded on demand, nothing cached)."""

    def __init__(self, records, tok, n_mels: int):
        self.records, self.tok, self.n_mels = list(records), tok, n_mels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> QAExample:
        r = self.records[i]
        ids, labels = training_example(prompt_ids(r.question, self.tok), self.tok.encode(r.answer) + [self.tok.eos_id])
        return QAExample(ids, labels, record_mels(r, self.n_mels))


def collate_qa(items: list[QAExample]) -> dict:
    """Rows stay separate (fusion pads them): {"ids": [(T_b,)], "labels": [(T_b,)], "audios": [(N_b, F, 3000)]}."""
    return {"ids": [it.ids for it in items], "labels": [it.labels for it in items],
            "audios": [it.mels for it in items]}
