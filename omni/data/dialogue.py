"""Dialogues as the omni model reads them: the chat template, and the parts OmniModel fuses.

One template for training (stage ``omni_sft``), evaluation and chat. Each
turn is plain text around the media markers; the shared BPE tokenizer has no
special role pieces, so the roles are spelled out::

    [BOS] "user: " <image> " what colour is the diamond? assistant:"  "▁black" [EOS]
          └──────────── prompt (labels -100) ─────────────────────┘  └─ answer ─┘

    system turn     "system: {content} "
    user turn       "user: {content} assistant:"      (content keeps its <image>/<audio> markers)
    assistant turn  the answer's pieces, then EOS      (EOS ends the turn and stops generation)

The tokenizer turns the newline after a marker into a space, so
``"<image>\\nwhat colour…"`` reads as ``<image> ▁what ▁colour…``. Text pieces are
tokenized separately (without BOS) and each marker is replaced by the next
image (1 token) or audio clip (``output_length(F)`` tokens), in order, as
:meth:`OmniModel.fuse_prompt` does.

What the model learns: the **last** assistant turn (the one the manifest
schema marks as learned). Earlier turns of a two-turn dialogue are context,
their answers teacher-forced: :attr:`DialogueExample.prompt_tokens` counts
the text tokens before the learned answer, for :meth:`Fusion.labels`. With
``learn="all"`` every assistant turn is learned (the usual chat-SFT rule):
:attr:`DialogueExample.learned` lists the text-token spans of the answers the
loss covers, each answer's pieces and its EOS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import torch

from omni.data.manifest import Message, SftRecord
from omni.tokenizer import AUDIO_MARKER, BOS_ID, EOS_ID, IMAGE_MARKER

SYSTEM_PREFIX = "system: "
USER_PREFIX = "user: "
ASSISTANT_PREFIX = " assistant:"     # closes every user turn: what follows is the answer
_MARKERS = re.compile(f"({re.escape(IMAGE_MARKER)}|{re.escape(AUDIO_MARKER)})")
LEARN_TURNS = ("last", "all")        # which assistant turns the loss covers


class DialogueError(ValueError):
    """A dialogue that does not fit the template or its media (the message says how)."""


@dataclass
class DialogueExample:
    """One dialogue, tokenized and with its media decoded, ready for ``OmniModel.fuse_parts``.

    ``parts`` are unbatched: ("text", ids (n,)), ("image", pixels (3, S, S)),
    ("audio", mel (F, 128)); the fusion adds the batch dimension.
    """
    id: str
    parts: list[tuple[str, torch.Tensor]]
    prompt_tokens: int          # text tokens before the learned answer (BOS included): labels -100
    answer: str | None          # the learned answer's text; None for a generation prompt
    learned: list[tuple[int, int]] | None = None   # text-token spans [start, stop) the loss covers;
                                                   # None: the last answer, [prompt_tokens, text_tokens)

    @property
    def text_tokens(self) -> int:
        return sum(x.shape[0] for kind, x in self.parts if kind == "text")


def render(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """messages → [("prompt", text with markers) | ("answer", text)], in order (the template above)."""
    out = []
    for i, m in enumerate(messages):
        if m.role == "system":
            out.append(("prompt", SYSTEM_PREFIX + m.content + " "))
        elif m.role == "user":
            out.append(("prompt", USER_PREFIX + m.content + ASSISTANT_PREFIX))
        elif m.role == "assistant":
            if IMAGE_MARKER in m.content or AUDIO_MARKER in m.content:
                raise DialogueError(f"message {i}: media markers may appear only in user turns")
            out.append(("answer", m.content))
        else:
            raise DialogueError(f"message {i}: unknown role {m.role!r}")
    return out


class BuiltDialogue(NamedTuple):
    parts: list                         # ("text", ids) / ("image", pixels) / ("audio", mel), in order
    prompt_tokens: int                  # text tokens before the last answer (all of them for a prompt)
    answer: str | None                  # the last answer's text; None for a generation prompt
    answer_spans: list[tuple[int, int]]  # text-token spans [start, stop) of every answer (pieces + EOS)


def build_parts(messages: Sequence[Message], tokenizer, images: Sequence[torch.Tensor] = (),
                mels: Sequence[torch.Tensor] = (), what: str = "dialogue") -> BuiltDialogue:
    """Tokenize ``messages`` and put each medium where its marker stands.

    Returns (parts, prompt_tokens, answer, answer_spans). If the last message
    is the assistant's, it is the learned answer (its pieces + EOS end the
    parts); if it is a user turn, the parts are a generation prompt ending in
    ``" assistant:"`` and answer is None.
    """
    if not messages:
        raise DialogueError(f"{what}: no messages")
    segments = render(messages)
    n_img = sum(t.count(IMAGE_MARKER) for k, t in segments if k == "prompt")
    n_aud = sum(t.count(AUDIO_MARKER) for k, t in segments if k == "prompt")
    if (n_img, n_aud) != (len(images), len(mels)):
        raise DialogueError(f"{what}: {n_img} {IMAGE_MARKER} and {n_aud} {AUDIO_MARKER} markers, but "
                            f"{len(images)} images and {len(mels)} audio clips")
    images, mels = list(images), list(mels)
    parts: list[tuple[str, torch.Tensor]] = []
    text: list[int] = [BOS_ID]
    n_text, prompt_tokens, answer, spans = 0, None, None, []

    def flush():
        nonlocal text, n_text
        if text:
            parts.append(("text", torch.tensor(text, dtype=torch.long)))
            n_text += len(text)
            text = []

    last = len(segments) - 1
    for i, (kind, content) in enumerate(segments):
        if kind == "answer":
            if i == last:
                flush()
                prompt_tokens, answer = n_text, content
            start = n_text + len(text)
            text += tokenizer.encode(content, add_bos=False) + [EOS_ID]
            spans.append((start, n_text + len(text)))
            continue
        for piece in _MARKERS.split(content):
            if piece == IMAGE_MARKER:
                flush()
                parts.append(("image", images.pop(0)))
            elif piece == AUDIO_MARKER:
                flush()
                parts.append(("audio", mels.pop(0)))
            elif piece:
                text += tokenizer.encode(piece, add_bos=False)
    flush()
    if prompt_tokens is None:                       # ends with a user turn: a prompt to continue
        prompt_tokens = n_text
    return BuiltDialogue(parts, prompt_tokens, answer, spans)


# ---------------------------------------------------------------------------
# Media: decoded the way the omni model reads them
# ---------------------------------------------------------------------------
def load_mel(path: Path, segment: tuple[float, float] | None = None) -> torch.Tensor:
    """An audio file (or its [start, end] segment) → tiny log-mel (F, 128)."""
    from omni.audio.io import SAMPLE_RATE, load_audio
    from omni.audio.tiny_mel import log_mel

    wave = load_audio(path)                                                        # (T,)
    if segment is not None:
        start, end = int(segment[0] * SAMPLE_RATE), int(round(segment[1] * SAMPLE_RATE))
        if end > wave.shape[0]:
            raise DialogueError(f"{path}: segment {list(segment)} ends after the audio "
                                f"({wave.shape[0] / SAMPLE_RATE:.2f} s)")
        wave = wave[start:end]
    return log_mel(wave, what=str(path))[0]                                         # (F, 128)


def load_example(record: SftRecord, tokenizer, image_size: int, learn: str = "last") -> DialogueExample:
    """A manifest record → :class:`DialogueExample` (images at ``image_size``, audio as tiny log-mel);
    ``learn`` ("last" | "all") says which assistant turns the loss covers."""
    from omni.images import load_image

    if learn not in LEARN_TURNS:
        raise ValueError(f"learn must be one of {LEARN_TURNS}, got {learn!r}")
    images = [load_image(p, size=image_size) for p in record.images]                # each (3, S, S)
    mels = [load_mel(p, s) for p, s in zip(record.audios, record.segments)]         # each (F, 128)
    built = build_parts(record.messages, tokenizer, images, mels, what=record.id)
    if built.answer is None:
        raise DialogueError(f"{record.id}: the last message must be the assistant's answer")
    learned = built.answer_spans if learn == "all" else None
    return DialogueExample(record.id, built.parts, built.prompt_tokens, built.answer, learned)


def token_count(record: SftRecord, tokenizer, image_tokens: int = 1) -> tuple[int, int]:
    """(fused length, longest clip's tokens) of a record, from file headers only (no decoding):
    text tokens + ``image_tokens`` per image (1: the seed's CLS) + ``output_length(T // 160)`` per clip."""
    import soundfile as sf

    from omni.audio.io import SAMPLE_RATE
    from omni.data.quality import encoder_frames

    blank = [torch.zeros(0)] * len(record.images), [torch.zeros(0)] * len(record.audios)
    parts = build_parts(record.messages, tokenizer, *blank, what=record.id).parts
    n_text = sum(x.shape[0] for kind, x in parts if kind == "text")
    clips = []
    for path, seg in zip(record.audios, record.segments):
        info = sf.info(str(path))
        seconds = (seg[1] - seg[0]) if seg is not None else info.frames / info.samplerate
        clips.append(encoder_frames(int(seconds * SAMPLE_RATE)))
    return n_text + image_tokens * len(record.images) + sum(clips), max(clips, default=0)
