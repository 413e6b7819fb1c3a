"""Seed 004, Parts 5 and 6: text-to-speech, and the Talker's training step, as traced dry runs.

    text ──BPE──▶ ids (1, 10) ──cap max(50, min(1000, 30 × 10)) = 300 frames
        ──TalkerTiny + KV cache: (1, 1, 2) → (1, 2, 2) → … → (1, 301, 2)
        ──RVQ decode──▶ (301, 128) ──Griffin-Lim──▶ (385,280,) @ 16 kHz ──▶ .wav

    mel (2, 50, 128) ──RVQ encode──▶ codes (2, 50, 2) ──shift──▶ (2, 50, 2)
        ──TalkerTiny──▶ (2, 50, 128) × 2 ──▶ (100, 128) vs (100,) ──▶ loss

Part 5 runs the real inference path (:func:`omni.pipelines.tts.synthesize`) on random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni import trace
from omni.audio.griffin_lim import VocoderConfig
from omni.audio.speech_mel import SpeechMelConfig
from omni.dry_run import example_ids
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny, talker_loss
from omni.pipelines.tts import synthesize

# The seed's example (Part 5, Step 1): "This is a test of text to speech." as 10 token ids.
SEED_TTS_TEXT = "This is a test of text to speech."
SEED_TTS_IDS = [234, 567, 890, 123, 456, 789, 234, 567, 890, 123]


def trace_tts(prompt: str = SEED_TTS_TEXT, tokenizer: str | Path | None = None,
              talker_cfg: TalkerConfig | None = None, vocoder: VocoderConfig | None = None) -> trace.Tracer:
    """Part 5 end to end on a randomly initialised Talker and codec.

    An untrained stop head fires at random, so this dry run ignores it and
    always generates up to the cap, to show the documented (1, 301, 2) path.
    """
    ids, source = example_ids(prompt, tokenizer, SEED_TTS_TEXT, SEED_TTS_IDS, add_bos=False, what="text")
    torch.manual_seed(0)
    talker = TalkerTiny(talker_cfg or TalkerConfig()).eval()
    rvq = RVQ(CodecConfig()).eval()
    with trace.Tracer() as tr:
        trace.record("tts.source", (len(ids),), f"{len(ids)} ids: {source}; dry run: random weights, "
                     f"stop head ignored so the full frame cap is generated", stage="tokenize")
        synthesize(ids, talker, rvq, vocoder=vocoder or VocoderConfig(), ignore_stop=True)
    return tr


def trace_talker_train(prompt: str | None = None, tokenizer: str | Path | None = None, batch: int = 2,
                       frames: int = 50, talker_cfg: TalkerConfig | None = None) -> trace.Tracer:
    """Part 6: one Talker training step on a random (2, 50, 128) mel batch, backward included."""
    if prompt is not None or tokenizer is not None:
        raise ValueError("the talker-train trace takes no prompt or tokenizer: it speaks the seed's example ids")
    torch.manual_seed(0)
    talker = TalkerTiny(talker_cfg or TalkerConfig()).train()
    rvq = RVQ(CodecConfig())
    mel_cfg = SpeechMelConfig()
    text = torch.tensor([SEED_TTS_IDS] * batch)                                   # (B, 10)
    with trace.Tracer() as tr:
        mel = torch.randn(batch, frames, mel_cfg.n_mels)                          # (B, T, 128)
        trace.record("train.mel", mel, "mel batch (batch, frames, mel bins); random for the dry run", stage="data")
        trace.record("train.text_ids", text, "text each sample speaks (the seed's example ids)", stage="data")
        codes = rvq.encode(mel)                                                   # (B, T, 2)
        loss, _ = talker_loss(talker, text, codes)
        loss.backward()
        grad = talker.base_head.weight.grad
        trace.record("train.base_head.grad", grad, "gradient reaching the base head", stage="backward")
    return tr
