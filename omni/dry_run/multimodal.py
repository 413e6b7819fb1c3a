"""Seed 004, Part 4: image + audio + text → text, as a traced dry run; and the
pieces the image-only and audio-only pipelines share.

    image (1, 3, 224, 224) ──ViTTiny + proj_v──▶ (1, 1, 256)
    audio (1, 16000) ──log-mel──▶ (1, 100, 128) ──AudioEncoderTiny + proj_a──▶ (1, 25, 256)
    "Describe what you see and hear." ──▶ ids (1, 9) ──embed──▶ (1, 9, 256)
    ──[image, audio, text]──▶ (1, 35, 256) ──ThinkerLM──▶ logits (1, 35, 5000) ──▶ text, with the KV cache

Generation embeds the fused prompt once (prefill), then feeds one token per step
through the Thinker's KV cache: :func:`omni.pipelines.chat.generate_multimodal`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from omni import trace
from omni.dry_run import example_ids
from omni.audio.io import SAMPLE_RATE
from omni.audio.tiny_mel import log_mel, log_mel_file
from omni.images import load_image, preprocess_image
from omni.generation.sampling import SamplingConfig
from omni.models.omni_model import OmniConfig, OmniModel
from omni.pipelines.chat import generate_multimodal
from omni.tokenizer import BOS_ID

SEED_EXAMPLE_PROMPT = "Describe what you see and hear."
# The seed gives only the count for this prompt (9 tokens), not the ids: BOS + 8 illustrative ids.
SEED_EXAMPLE_IDS = [BOS_ID, 345, 678, 901, 234, 567, 890, 123, 456]
TRACE_NEW_TOKENS = 8       # tokens generated in a trace (weights are random: shapes, not answers)


def example_picture():
    """A 320 × 240 synthetic picture (a red disc on a sky-blue field), so the trace
    also exercises the resize and centre crop. Drawn, not downloaded."""
    from PIL import Image

    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[...] = (135, 206, 235)
    rgb[(yy - 120) ** 2 + (xx - 160) ** 2 < 70 ** 2] = (220, 30, 30)
    return Image.fromarray(rgb, mode="RGB")


def example_tone(seconds: float = 1.0, hz: float = 440.0) -> torch.Tensor:
    """One second of a 440 Hz tone at 16 kHz: 16,000 samples (the seed's example clip length)."""
    t = torch.arange(int(seconds * SAMPLE_RATE), dtype=torch.float32) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * hz * t)


@trace.stage("image input")
def traced_image(path: str | os.PathLike | None) -> torch.Tensor:
    """pixels (1, 3, 224, 224) from ``path`` or the example picture, recorded in the trace."""
    pixels = (load_image(path) if path is not None else preprocess_image(example_picture()))[None]
    trace.record("image.pixels", pixels, f"{Path(path).name if path else 'example picture'}, "
                 "centre square → 224 × 224, CLIP-normalised")
    return pixels


@trace.stage("audio input")
def traced_mel(path: str | os.PathLike | None) -> torch.Tensor:
    """log-mel (1, F, 128) of ``path`` or of the example tone, recorded in the trace."""
    if path is not None:
        return log_mel_file(path)
    wave = example_tone()[None]                                                     # (1, 16000)
    trace.record("audio.wave", wave, "1 s at 16 kHz (440 Hz tone)")
    return log_mel(wave)


def run_traced(ids: list[int], source: str, image: str | os.PathLike | None | bool = None,
               audio: str | os.PathLike | None | bool = None, cfg: OmniConfig | None = None,
               new_tokens: int = TRACE_NEW_TOKENS) -> trace.Tracer:
    """Fuse [image?, audio?, text] on a randomly initialised OmniModel, run the Thinker,
    take the next token and generate ``new_tokens`` with the KV cache; return the trace.

    ``image`` / ``audio``: a file path, True for the built-in example, None/False to leave out.
    """
    torch.manual_seed(0)
    model = OmniModel(cfg or OmniConfig()).eval()
    with trace.Tracer() as tr, torch.no_grad():
        pixels = traced_image(None if image is True else image) if image else None
        mel = traced_mel(None if audio is True else audio) if audio else None
        x = torch.tensor([ids])                                                     # (1, T)
        trace.record("text.ids", x, f"[BOS] + tokens ({source})", stage="tokenize")
        fusion = model.fuse(x, pixels=pixels, mel=mel)
        logits = model.thinker(embeds=fusion.embeds)
        trace.record("text.last_logits", logits[0, -1], "logits of the last position", stage="next token")
        nxt = logits[0, -1].argmax()
        trace.record("text.next_id", nxt[None], f"argmax → token {int(nxt)}", stage="next token")
        generate_multimodal(model, fusion, SamplingConfig(max_new_tokens=new_tokens), eos_id=None)
    return tr


def trace_multimodal(prompt: str = SEED_EXAMPLE_PROMPT, tokenizer: str | os.PathLike | None = None,
                     image: str | os.PathLike | None = None, audio: str | os.PathLike | None = None,
                     cfg: OmniConfig | None = None) -> trace.Tracer:
    """Part 4: 1 image token + 25 audio tokens + 9 text tokens = 35 → logits (1, 35, 5000)."""
    ids, source = example_ids(prompt, tokenizer, SEED_EXAMPLE_PROMPT, SEED_EXAMPLE_IDS)
    return run_traced(ids, source, image=image or True, audio=audio or True, cfg=cfg)
