"""Chat: a question, with optional images and audio clips, → an answer streamed as it is generated.

    question "what is in the picture?" + image + clip
      ──no markers in the question: prepend them in the seed's order──▶ "<image>\n<audio>\nwhat is in the picture?"
      ──the SFT chat template (omni.data.dialogue)──▶ "user: <image> <audio> what is in the picture? assistant:"
      ──OmniModel.fuse_parts──▶ embeds (1, T, 256)        [text 3 + image 1 + audio 25 + text 9]
      ──generate_multimodal (prefill, then one token per step, KV cache)──▶ ids, one at a time
      ──TextStream──▶ the new text of each token, handed to ``on_text`` as soon as it exists

The omni model is asked in the template it was fine-tuned with
(:func:`omni.data.dialogue.build_parts`), so chat, training and the omni_sft
evaluation read the same prompt; markers are written as the synthetic world
writes them (``<image>\n``).

A conversation (:func:`converse`, ``omni chat Q1 Q2 …``) asks several
questions in turn: each earlier question and the model's own answer stay in
the prompt, exactly as the world's two-turn dialogues are laid out in training::

    user: <image₁> what colour is the star? assistant: red [EOS] user: <image₂> what shape is on the left? assistant:

Each question then carries its own markers, and the media are consumed in
marker order across the turns.

The text-only path (``omni chat --text-only``) runs the Thinker export alone:
``BOS + tokens ──ThinkerLM──▶ ids``.

Why :class:`TextStream` decodes the whole answer every step instead of one
token at a time: SentencePiece marks a word's start with "▁" (decoded as a
space only between words) and its byte-fallback pieces make one character out
of several tokens, so a token's text depends on its neighbours. Decoding the
answer so far and emitting only what was added gives exactly the final text,
piece by piece; a trailing incomplete UTF-8 character is held back until its
last byte arrives (or generation ends: :meth:`TextStream.flush`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from omni.models.omni_model import Fusion, OmniModel
from omni.models.thinker import ThinkerLM
from omni.generation.generate import GenerationResult, generate
from omni.generation.sampling import SamplingConfig
from omni.tokenizer import AUDIO_MARKER, EOS_ID, IMAGE_MARKER, BPETokenizer

REPLACEMENT_CHAR = "\ufffd"     # what decoding shows for an incomplete UTF-8 byte sequence


class TextStream:
    """Called with each new id tensor (B=1,) by :func:`generate`; calls ``emit`` with the new text."""

    def __init__(self, tokenizer: BPETokenizer, emit: Callable[[str], None] | None = None):
        self.tokenizer = tokenizer
        self.emit = emit
        self.ids: list[int] = []
        self.text = ""                  # what has been emitted so far

    def __call__(self, new_ids: torch.Tensor) -> None:
        if new_ids.numel() != 1:
            raise ValueError(f"TextStream follows one sequence: expected one new id, got shape {tuple(new_ids.shape)}")
        self.ids.append(int(new_ids.reshape(-1)[0]))
        full = self.tokenizer.decode(self.ids)
        if full.endswith(REPLACEMENT_CHAR) or not full.startswith(self.text):
            return                      # wait for the rest of a multi-byte character
        self._emit(full)

    def flush(self) -> None:
        """At the end of generation: emit what was held back (an unfinished character shows as \ufffd)."""
        self._emit(self.tokenizer.decode(self.ids))

    def _emit(self, full: str) -> None:
        if not full.startswith(self.text):
            return                      # decoding changed text already shown; it cannot be taken back
        new, self.text = full[len(self.text):], full
        if new and self.emit is not None:
            self.emit(new)


@dataclass
class ChatResult:
    text: str               # the decoded answer (special ids dropped)
    ids: list[int]          # generated ids, EOS included when the model stopped by itself
    stop_reason: str        # "eos", "max_new_tokens" or "ctx_len"
    prompt: str             # the prompt as fused, markers included
    layout: str             # e.g. "image 1 + audio 25 + text 9"


def generate_multimodal(model: OmniModel, fusion: Fusion, sampling: SamplingConfig | None = None,
                        eos_id: int | None = EOS_ID, use_cache: bool = True, **kwargs) -> GenerationResult:
    """Continue a fused prompt: the embeddings go through the Thinker once (prefill), then
    one token per step with the KV cache (``use_cache=False`` re-runs everything: the reference)."""
    return generate(model.thinker, embeds=fusion.embeds, sampling=sampling, eos_id=eos_id,
                    use_cache=use_cache, **kwargs)


def with_markers(question: str, n_images: int, n_audios: int) -> str:
    """Put one ``<image>`` line per image, then one ``<audio>`` line per clip, before a question that has
    no markers (the seed's order: image, audio, text). A question with markers is left as written."""
    if IMAGE_MARKER in question or AUDIO_MARKER in question:
        return question
    return f"{IMAGE_MARKER}\n" * n_images + f"{AUDIO_MARKER}\n" * n_audios + question


def _generator(model: torch.nn.Module, seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    device = next(model.parameters()).device
    return torch.Generator(device=device).manual_seed(seed)


def chat(model: OmniModel | ThinkerLM, tokenizer: BPETokenizer, question: str,
         images: Sequence[torch.Tensor] = (), mels: Sequence[torch.Tensor] = (),
         sampling: SamplingConfig | None = None, seed: int | None = 0,
         on_text: Callable[[str], None] | None = None,
         history: Sequence[tuple[str, str]] = (), fast: bool = False) -> ChatResult:
    """Answer ``question`` about ``images`` (each (3, 224, 224)) and ``mels`` (each (F, 128) or (1, F, 128)).

    An OmniModel fuses the prompt with its placeholders; a bare ThinkerLM takes text only.
    ``on_text`` receives each new piece of the answer while it is generated.
    ``history`` holds earlier (question, answer) turns of the conversation; their
    markers and the question's consume ``images`` / ``mels`` in order.
    ``fast`` decodes through the Thinker's fast step (``generate(fast=True)``, omni.nn.fast_decode).
    """
    if not question.strip():
        raise ValueError("the question is empty")
    if history and not isinstance(model, OmniModel):
        raise ValueError("a conversation with history needs the omni_sft checkpoint (OmniModel)")
    stream = TextStream(tokenizer, on_text)
    generator = _generator(model, seed)
    if isinstance(model, OmniModel):
        from omni.data.dialogue import build_parts      # the SFT template (omni_sft stage)
        from omni.data.manifest import Message

        prompt = with_markers(question, len(images), len(mels)) if not history else question
        device = model.thinker.tok_emb.weight.device
        mels = [m[0] if m.dim() == 3 else m for m in mels]                       # each (F, 128)
        messages = [Message(role, text) for q, a in history for role, text in (("user", q), ("assistant", a))]
        parts = build_parts(messages + [Message("user", prompt)], tokenizer, images=list(images), mels=mels,
                            what="conversation" if history else "question").parts
        fusion = model.fuse_parts([(kind, x[None].to(device)) for kind, x in parts])   # (1, T, C)
        result = generate_multimodal(model, fusion, sampling, eos_id=EOS_ID, generator=generator, on_token=stream,
                                     fast=fast)
        layout = fusion.counts()
    elif isinstance(model, ThinkerLM):
        if images or mels:
            raise ValueError(f"the text-only Thinker cannot take {len(images)} image(s) and {len(mels)} audio clip(s); "
                             f"use the omni_sft checkpoint (OmniModel)")
        prompt = question
        ids = torch.tensor([tokenizer.encode(question)], device=model.tok_emb.weight.device)   # (1, T) with BOS
        result = generate(model, ids=ids, sampling=sampling, eos_id=EOS_ID, generator=generator, on_token=stream,
                          fast=fast)
        layout = f"text {ids.shape[1]}"
    else:
        raise TypeError(f"chat needs an OmniModel or a ThinkerLM, got {type(model).__name__}")
    stream.flush()
    ids = result.tokens[0].tolist()
    if result.stop_reason == "eos":
        ids = ids[:ids.index(EOS_ID) + 1]
    return ChatResult(tokenizer.decode(ids), ids, result.stop_reason, prompt, layout)


def converse(model: OmniModel, tokenizer: BPETokenizer, questions: Sequence[str],
             images: Sequence[torch.Tensor] = (), mels: Sequence[torch.Tensor] = (),
             sampling: SamplingConfig | None = None, seed: int | None = 0,
             on_text: Callable[[int, str], None] | None = None,
             on_turn: Callable[[int], None] | None = None, fast: bool = False) -> list[ChatResult]:
    """Ask ``questions`` one after another in one conversation; returns one result per turn.

    Each question places its media with ``<image>`` / ``<audio>`` markers (consumed
    in order across the turns); with a single question, unmarked media go in front
    as in :func:`chat`. ``on_turn(turn)`` is called before each turn is answered,
    ``on_text(turn, piece)`` streams each answer.
    """
    if not questions:
        raise ValueError("no questions to ask")
    if len(questions) > 1:
        n_img = sum(q.count(IMAGE_MARKER) for q in questions)
        n_aud = sum(q.count(AUDIO_MARKER) for q in questions)
        if (n_img, n_aud) != (len(images), len(mels)):
            raise ValueError(f"{len(questions)} questions hold {n_img} {IMAGE_MARKER} and {n_aud} {AUDIO_MARKER} "
                             f"markers, but {len(images)} images and {len(mels)} audio clips were given: in a "
                             f"conversation each question places its own media with markers")
    history: list[tuple[str, str]] = []
    results, used_img, used_aud = [], 0, 0
    for turn, question in enumerate(questions):
        if len(questions) > 1:
            used_img += question.count(IMAGE_MARKER)
            used_aud += question.count(AUDIO_MARKER)
        else:
            used_img, used_aud = len(images), len(mels)
        if on_turn is not None:
            on_turn(turn)
        emit = (lambda piece, t=turn: on_text(t, piece)) if on_text is not None else None
        result = chat(model, tokenizer, question, images=images[:used_img], mels=mels[:used_aud],
                      sampling=sampling, seed=seed, on_text=emit, history=history, fast=fast)
        results.append(result)
        history.append((result.prompt, result.text))
    return results
