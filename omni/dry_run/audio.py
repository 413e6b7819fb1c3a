"""Seed 004, Part 3: audio + text → text, as a traced dry run.

    wave (1, 16000) ──log-mel──▶ (1, 100, 128) ──▶ (1, 1, 100, 128) ──conv──▶ (1, 64, 50, 64)
        ──conv──▶ (1, 64, 25, 32) ──▶ (1, 25, 2048) ──Linear──▶ (1, 25, 192) ──4 blocks──▶ (1, 25, 192)
        ──proj_a──▶ (1, 25, 256)
    "What did you hear?" ──▶ ids (1, 5) ──embed──▶ (1, 5, 256)
    ──[audio, text]──▶ (1, 30, 256) ──ThinkerLM──▶ logits (1, 30, 5000) ──▶ text, with the KV cache
"""

from __future__ import annotations

import os

from omni import trace
from omni.dry_run import example_ids
from omni.models.omni_model import OmniConfig
from omni.dry_run.multimodal import run_traced
from omni.tokenizer import BOS_ID

# The seed's own example tokenization of the prompt (BOS + 4 tokens).
SEED_EXAMPLE_PROMPT = "What did you hear?"
SEED_EXAMPLE_IDS = [BOS_ID, 234, 567, 890, 123]


def trace_audio(prompt: str = SEED_EXAMPLE_PROMPT, tokenizer: str | os.PathLike | None = None,
                audio: str | os.PathLike | None = None, cfg: OmniConfig | None = None) -> trace.Tracer:
    """Run Part 3 on a randomly initialised OmniModel (a 1 s 440 Hz tone unless ``audio`` is a path)."""
    ids, source = example_ids(prompt, tokenizer, SEED_EXAMPLE_PROMPT, SEED_EXAMPLE_IDS)
    return run_traced(ids, source, image=None, audio=audio or True, cfg=cfg)
