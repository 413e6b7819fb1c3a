"""Dry runs: each pipeline of the seeds traced on random weights (or, for MuFun, on ``meta``).

    text.py          Part 1: ids → ThinkerLM → logits → KV-cache generation
    image.py         Part 2: image + text → text
    audio.py         Part 3: audio + text → text
    multimodal.py    Part 4: image + audio + text → text; the pieces image.py and audio.py share
    tts.py           Parts 5 and 6: text → codes → mel → wave, and one Talker training step
    mufun.py         the full-size MuFun on ``meta`` (seed 000's dimension table)

A dry run shows shapes, not answers: the weights are random. Real inference with trained weights is
:mod:`omni.pipelines` (``chat``, ``tts``); ``omni trace <name>`` runs these (:data:`omni.traces.TRACE_PIPELINES`).
"""

from __future__ import annotations

import os

from omni.tokenizer import BPETokenizer


def example_ids(prompt: str, tokenizer: str | os.PathLike | None, seed_prompt: str, seed_ids: list[int],
                add_bos: bool = True, what: str = "prompt") -> tuple[list[int], str]:
    """Token ids for ``prompt`` and where they came from: the tokenizer when given, else (only for the
    seed's example ``what``, its prompt or text) the seed's example ids."""
    if tokenizer is not None:
        return BPETokenizer(tokenizer).encode(prompt, add_bos=add_bos), f"tokenized with {tokenizer}"
    if prompt != seed_prompt:
        raise ValueError(f"tracing {prompt!r} needs a tokenizer (--tokenizer PATH); without one only the "
                         f"seed's example {what} {seed_prompt!r} is traced, with its example ids")
    return list(seed_ids), "the seed's example ids (no tokenizer given)"
