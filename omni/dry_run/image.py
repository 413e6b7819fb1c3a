"""Seed 004, Part 2: image + text → text, as a traced dry run.

    image (1, 3, 224, 224) ──Conv2d 16×16──▶ (1, 128, 14, 14) ──▶ (1, 196, 128) ──CLS──▶ (1, 197, 128)
        ──4 blocks──▶ CLS (1, 1, 128) ──proj_v──▶ (1, 1, 256)
    "What do you see in this image?" ──▶ ids (1, 8) ──embed──▶ (1, 8, 256)
    ──[image, text]──▶ (1, 9, 256) ──ThinkerLM──▶ logits (1, 9, 5000) ──▶ text, with the KV cache
"""

from __future__ import annotations

import os

from omni import trace
from omni.dry_run import example_ids
from omni.models.omni_model import OmniConfig
from omni.dry_run.multimodal import run_traced
from omni.tokenizer import BOS_ID

# The seed's own example tokenization of the prompt (BOS + 7 tokens).
SEED_EXAMPLE_PROMPT = "What do you see in this image?"
SEED_EXAMPLE_IDS = [BOS_ID, 123, 456, 789, 234, 567, 890, 345]


def trace_image(prompt: str = SEED_EXAMPLE_PROMPT, tokenizer: str | os.PathLike | None = None,
                image: str | os.PathLike | None = None, cfg: OmniConfig | None = None) -> trace.Tracer:
    """Run Part 2 on a randomly initialised OmniModel (the example picture unless ``image`` is a path)."""
    ids, source = example_ids(prompt, tokenizer, SEED_EXAMPLE_PROMPT, SEED_EXAMPLE_IDS)
    return run_traced(ids, source, image=image or True, audio=None, cfg=cfg)
