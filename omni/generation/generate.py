"""Autoregressive generation for any decoder in the project (ThinkerLM, Qwen3).

The decoder contract: ``model(ids=..., embeds=..., cache=...) → logits (B, T, V)``,
``model.embed(ids) → (B, T, C)`` and ``model.cache_spec()``. Generation with the
cache processes the prompt once (prefill) and then one token per step; the
uncached path re-runs the whole sequence every step. It is the reference the
tests compare the cached path against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from omni import trace
from omni.nn import KVCache
from omni.generation.sampling import SamplingConfig, sample_next


@dataclass
class GenerationResult:
    tokens: torch.Tensor                 # (B, n_new) generated ids (after EOS: eos_id)
    stop_reason: str                     # "eos", "max_new_tokens" or "ctx_len"
    step_logits: list[torch.Tensor] = field(default_factory=list)  # per step (B, V) when asked


@torch.inference_mode()
@trace.stage("generate (KV cache)")
def generate(model, ids: torch.Tensor | None = None, embeds: torch.Tensor | None = None,
             sampling: SamplingConfig | None = None, eos_id: int | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None, return_logits: bool = False,
             on_token: Callable[[torch.Tensor], None] | None = None, fast: bool = False) -> GenerationResult:
    """Continue a prompt given as ids (B, T) xor embeds (B, T, C).

    ``fast=True`` (with the cache, fp32) runs the decode steps through ``model.fast_decoder()``
    (omni.nn.fast_decode: the same arithmetic on a snapshot of the weights laid out for one-row
    products, no module calls); the prompt still goes through the model's ``hidden_states``, and only
    its last position through the head (the decoder then needs ``hidden_states`` too). Same tokens as the eager
    steps (tests/test_fast_decode.py); the trace shows the eager path only.

    Stops when every row has produced ``eos_id``, after ``max_new_tokens``, or
    when the sequence reaches the model's context length (``stop_reason`` says
    which). ``on_token`` receives each new (B,) id tensor (for streaming).
    """
    sampling = sampling or SamplingConfig()
    if (ids is None) == (embeds is None):
        raise ValueError("generate takes exactly one of ids (B, T) or embeds (B, T, C)")
    prompt = model.embed(ids) if ids is not None else embeds          # (B, T, C)
    B, T, _ = prompt.shape
    ctx_len = model.cache_spec()[3]
    if T > ctx_len:
        raise ValueError(f"prompt of {T} tokens exceeds ctx_len={ctx_len}")
    cache = KVCache.for_model(model, B, dtype=prompt.dtype, device=prompt.device) if use_cache else None
    if fast and not use_cache:
        raise ValueError("fast=True decodes with the KV cache; it cannot be combined with use_cache=False")
    decoder = model.fast_decoder() if fast else None          # built per call: never a stale snapshot
    finished = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    out, step_logits, stop_reason = [], [], "max_new_tokens"
    seq = prompt
    # prefill: the whole prompt once (traced as one line; its layers are the forward pass shown before)
    trace.record_always("generate.prefill", (B, T), "prompt processed once, filling the KV cache")
    trace.mute()
    if decoder is not None:   # logits of the last position only (the decoder's hidden_states)
        logits = decoder.logits(model.hidden_states(embeds=prompt, cache=cache)[:, -1])   # (B, V)
    else:
        logits = model(embeds=prompt, cache=cache)[:, -1]              # (B, V)
    trace.mute(False)
    for step in range(sampling.max_new_tokens):
        if return_logits:
            step_logits.append(logits.float().clone())
        nxt = sample_next(logits, sampling, generator)                  # (B,)
        if eos_id is not None:
            nxt = torch.where(finished, torch.full_like(nxt, eos_id), nxt)
            finished |= nxt == eos_id
        out.append(nxt)
        trace.record_always("generate.sequence", (B, T + len(out)), "sequence grows by one token")
        if on_token is not None:
            on_token(nxt)
        if eos_id is not None and bool(finished.all()):
            stop_reason = "eos"
            break
        if step == sampling.max_new_tokens - 1:
            break
        if T + len(out) >= ctx_len:
            stop_reason = "ctx_len"
            break
        if decoder is not None:                                          # the optional fast step
            logits = decoder.step(nxt, cache)                            # (B, V)
            continue
        new = model.embed(nxt[:, None])                                  # (B, 1, C)
        # the trace shows the first decode step in full, later ones by their sequence length only
        trace.mute(step > 0)
        if use_cache:
            logits = model(embeds=new, cache=cache)[:, -1]
        else:
            seq = torch.cat([seq, new], dim=1)
            logits = model(embeds=seq)[:, -1]
        trace.mute(False)
    tokens = torch.stack(out, dim=1) if out else torch.zeros(B, 0, dtype=torch.long, device=prompt.device)
    return GenerationResult(tokens, stop_reason, step_logits)
