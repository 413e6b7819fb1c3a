"""Fusion: put each audio's embeddings where its ``<audio>`` marker stands in the prompt (seeds 000, 002).

    "Listen to <audio> and tell me the genre"
      ──tokenize around the marker──▶ [15234, 284, -200, 323, 3291, 502, 279, 17779]   (8 ids)
      ──embed the 7 text ids, splice in the audio──▶ [2 text | 1800 audio | 5 text] (1807, H)

The placeholder id is MuFun's ``IMAGE_TOKEN_INDEX = -200`` (its code was written
for images; the marker text is ``<audio>``). Several audios may appear in one
prompt; they are consumed in order. Labels of audio positions are -100 (never
predicted). MuFun silently truncates a fused sequence to its training length;
here a sequence that does not fit is an error that names its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from omni import trace
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.tokenizer import AUDIO_MARKER

AUDIO_TOKEN_INDEX = -200     # placeholder id of one <audio> marker in the id stream


class FusionError(ValueError):
    """Markers and audios that do not match, or a fused sequence that does not fit."""


def tokenize_with_audio(text: str, encode: Callable[[str], list[int]]) -> list[int]:
    """Encode the text between ``<audio>`` markers with ``encode`` and put -200 for each marker."""
    pieces = text.split(AUDIO_MARKER)
    ids: list[int] = []
    for i, piece in enumerate(pieces):
        if i > 0:
            ids.append(AUDIO_TOKEN_INDEX)
        if piece:
            ids.extend(encode(piece))
    return ids


def training_example(prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (T,) = prompt + answer and labels (T,) that teach only the answer.

    The prompt (its <audio> markers included) is labelled -100; the answer's ids
    are their own labels (the decoder's loss shifts them by one). Append the end
    token to ``answer_ids`` to teach the model to stop.
    """
    if not answer_ids:
        raise FusionError("a training example needs at least one answer token")
    if AUDIO_TOKEN_INDEX in answer_ids:
        raise FusionError("the answer must not contain an <audio> marker")
    ids = torch.tensor(list(prompt_ids) + list(answer_ids), dtype=torch.long)
    labels = torch.tensor([IGNORE_INDEX] * len(prompt_ids) + list(answer_ids), dtype=torch.long)
    return ids, labels


@dataclass
class FusedSequence:
    embeds: torch.Tensor                 # (T', H) text and audio embeddings in prompt order
    labels: torch.Tensor | None          # (T',) labels with -100 on audio positions, or None
    audio_spans: list[tuple[int, int]]   # [start, end) of each audio in the fused sequence
    n_text: int                          # text tokens (markers excluded)


@trace.stage("fusion")
def fuse(ids: torch.Tensor, audio_embeds: Sequence[torch.Tensor], embed: Callable[[torch.Tensor], torch.Tensor],
         labels: torch.Tensor | None = None, max_len: int | None = None) -> FusedSequence:
    """Splice ``audio_embeds`` (each (n_i, H)) into the embedded text of ``ids`` (T,).

    ``embed`` maps ids (1, t) → (1, t, H) (the decoder's :meth:`embed`). ``labels``
    (T,) aligned with ``ids`` become (T',) with -100 over each audio.
    """
    if ids.dim() != 1:
        raise FusionError(f"fuse takes one prompt of ids (T,), got shape {tuple(ids.shape)}")
    if labels is not None and labels.shape != ids.shape:
        raise FusionError(f"labels {tuple(labels.shape)} do not match ids {tuple(ids.shape)}")
    trace.record("fusion.ids", ids, f"prompt ids (each <audio> marker is {AUDIO_TOKEN_INDEX})")
    is_marker = ids == AUDIO_TOKEN_INDEX
    positions = is_marker.nonzero().flatten().tolist()
    if len(positions) != len(audio_embeds):
        raise FusionError(f"the prompt has {len(positions)} {AUDIO_MARKER} marker(s) (id {AUDIO_TOKEN_INDEX}) "
                          f"but {len(audio_embeds)} audio(s) were given; they must match one to one")
    n_text = ids.shape[0] - len(positions)
    n_audio = [int(a.shape[0]) for a in audio_embeds]
    total = n_text + sum(n_audio)
    if max_len is not None and total > max_len:
        parts = " + ".join([f"text {n_text} tokens"] + [f"audio {i + 1} {n} tokens" for i, n in enumerate(n_audio)])
        raise FusionError(f"fused sequence of {total} tokens exceeds max_seq_len={max_len}: {parts}; "
                          f"shorten the prompt or pass a [start, end] segment of the audio")
    text_ids = ids[~is_marker]
    text = embed(text_ids[None])[0] if n_text else None                          # (n_text, H)
    if text is not None:
        trace.record("fusion.text_embeds", text, f"{n_text} text tokens embedded")
    pieces, label_pieces, spans = [], [], []
    t_prev, text_pos, out_pos = 0, 0, 0
    for k, p in enumerate(positions + [ids.shape[0]]):
        n = p - t_prev                                                           # text ids before this marker
        if n:
            pieces.append(text[text_pos:text_pos + n])
            if labels is not None:
                label_pieces.append(labels[t_prev:p])
            text_pos, out_pos = text_pos + n, out_pos + n
        if k < len(positions):
            a = audio_embeds[k]
            if a.dim() != 2 or (text is not None and a.shape[1] != text.shape[1]):
                raise FusionError(f"audio {k + 1} embeddings must be (n, H) with the text's H, got {tuple(a.shape)}")
            pieces.append(a.to(text.dtype) if text is not None else a)
            if labels is not None:
                label_pieces.append(torch.full((a.shape[0],), IGNORE_INDEX, dtype=labels.dtype, device=labels.device))
            spans.append((out_pos, out_pos + a.shape[0]))
            out_pos += a.shape[0]
        t_prev = p + 1
    embeds = torch.cat(pieces)                                                    # (T', H)
    trace.record("fusion.sequence", embeds, f"text and {len(positions)} audio(s) interleaved")
    fused_labels = torch.cat(label_pieces) if labels is not None else None
    return FusedSequence(embeds, fused_labels, spans, n_text)


def pad_batch(seqs: Sequence[FusedSequence]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Right-pad fused sequences into embeds (B, T, H), labels (B, T) and lengths (B,).

    Padding goes at the end, where causal attention keeps it from influencing
    any real position; its labels are -100 so the loss ignores it.
    """
    if not seqs:
        raise FusionError("pad_batch got no sequences")
    lengths = torch.tensor([s.embeds.shape[0] for s in seqs])
    T, H = int(lengths.max()), seqs[0].embeds.shape[1]
    ref = seqs[0].embeds
    embeds = torch.zeros(len(seqs), T, H, dtype=ref.dtype, device=ref.device)
    has_labels = [s.labels is not None for s in seqs]
    if any(has_labels) and not all(has_labels):
        raise FusionError("either every sequence in a batch has labels or none does")
    labels = torch.full((len(seqs), T), IGNORE_INDEX, dtype=torch.long, device=ref.device) if all(has_labels) else None
    for b, s in enumerate(seqs):
        n = s.embeds.shape[0]
        embeds[b, :n] = s.embeds
        if labels is not None:
            labels[b, :n] = s.labels
    return embeds, labels, lengths
