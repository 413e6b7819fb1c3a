"""Seed 004, Part 1: the text-only pipeline, as a traced dry run.

    "Hello, how are you?" → ids (1, 6) → embed (1, 6, 256) → 4 blocks → logits (1, 6, 5000)
    → next token → with the KV cache 6 → 7 → … → 70 tokens → text
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni import trace
from omni.dry_run import example_ids
from omni.models.thinker import ThinkerConfig, ThinkerLM
from omni.generation.generate import generate
from omni.generation.sampling import SamplingConfig
from omni.tokenizer import BOS_ID

# The seed's own example tokenization of "Hello, how are you?" (BOS + 5 tokens).
SEED_EXAMPLE_PROMPT = "Hello, how are you?"
SEED_EXAMPLE_IDS = [BOS_ID, 234, 567, 890, 123, 456]
SEED_TOTAL_TOKENS = 70     # the seed grows the sequence 6 → 70


def trace_text(prompt: str = SEED_EXAMPLE_PROMPT, tokenizer: str | Path | None = None,
               total_tokens: int = SEED_TOTAL_TOKENS, cfg: ThinkerConfig | None = None) -> trace.Tracer:
    """Run Part 1 on a randomly initialised ThinkerLM and return the trace.

    Weights are random (a dry run shows shapes, not answers); generation is
    greedy with the KV cache until the sequence holds ``total_tokens`` tokens.
    """
    ids, source = example_ids(prompt, tokenizer, SEED_EXAMPLE_PROMPT, SEED_EXAMPLE_IDS)
    torch.manual_seed(0)
    model = ThinkerLM(cfg or ThinkerConfig()).eval()
    with trace.Tracer() as tr:
        x = torch.tensor([ids])
        trace.record("text.ids", x, f"[BOS] + tokens ({source})", stage="tokenize")
        with torch.no_grad():
            logits = model(x)                                     # stage "thinker" (ThinkerLM.forward's)
        trace.record("text.last_logits", logits[0, -1], "logits of the last position", stage="next token")
        nxt = logits[0, -1].argmax()
        trace.record("text.next_id", nxt[None], f"argmax → token {int(nxt)}", stage="next token")
        n_new = total_tokens - len(ids)
        if n_new >= 1:
            generate(model, ids=x, sampling=SamplingConfig(max_new_tokens=n_new))   # stage "generate (KV cache)"
    return tr
