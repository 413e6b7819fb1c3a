"""Seed 004, Part 5: text-to-speech with a trained Talker and codec.

    text ──BPE──▶ ids (1, 10) ──cap max(50, min(1000, 30 × 10)) = 300 frames
        ──TalkerTiny + KV cache: (1, 1, 2) → (1, 2, 2) → … → (1, 301, 2)
        ──RVQ decode──▶ (301, 128) ──Griffin-Lim──▶ (385,280,) @ 16 kHz ──▶ .wav

As in the seed, the start frame (codes 0, 0) is part of the decoded sequence:
301 code frames → 301 mel frames → 301 × 1280 samples. The same path on random weights, and the
Talker's training step (Part 6), are traced in :mod:`omni.dry_run.tts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from omni import trace
from omni.audio.griffin_lim import VocoderConfig, mel_to_audio
from omni.audio.io import save_audio
from omni.audio.speech_mel import SpeechMelConfig
from omni.models.rvq import RVQ, CodecConfig
from omni.models.talker import TalkerConfig, TalkerTiny
from omni.models.vocoder import VocosTiny
from omni.nn import KVCache
from omni.tokenizer import BPETokenizer

@dataclass
class SpeechCodes:
    codes: torch.Tensor     # (1, 1 + n, K): the zero start frame and n generated frames
    stop_reason: str        # "stop" (the stop head said so) or "cap" (Part 5's frame limit)


@torch.no_grad()
@trace.stage("talker generate")
def generate_codes(talker: TalkerTiny, text_ids: torch.Tensor, max_frames: int | None = None,
                   use_cache: bool = True, ignore_stop: bool = False) -> SpeechCodes:
    """Greedy frame-by-frame decoding for text_ids (1, N), from a zero frame (1, 1, K).

    At most ``max_frames`` frames (default: Part 5's cap for N tokens); stops
    earlier after a frame whose stop logit is > 0 unless ``ignore_stop``. The
    uncached path re-runs the whole sequence every step: the reference that the
    cached one must match.
    """
    talker.check_text(text_ids)
    if text_ids.shape[0] != 1:
        raise ValueError(f"generate_codes speaks one text at a time (batch 1), got text_ids {tuple(text_ids.shape)}")
    cfg = talker.cfg
    cap = cfg.frame_cap(text_ids.shape[1]) if max_frames is None else max_frames
    if not 1 <= cap <= cfg.max_frames:
        raise ValueError(f"max_frames must be in [1, {cfg.max_frames}], got {cap}")
    codes = torch.zeros(1, 1, cfg.n_codebooks, dtype=torch.long, device=text_ids.device)   # (1, 1, K) start
    trace.record("tts.codes.start", codes, "start: zero codes (batch, frames, codebooks)")
    cache = KVCache.for_model(talker, 1) if use_cache else None
    out = talker(codes, text_ids=text_ids, cache=cache)       # prefill: text + start frame
    stop_reason = "cap"
    for step in range(cap):
        frame = torch.stack([out.base[:, -1].argmax(-1), out.residual[:, -1].argmax(-1)], dim=-1)[:, None]  # (1,1,K)
        codes = torch.cat([codes, frame], dim=1)                                  # (1, step + 2, K)
        if step < 2:
            trace.record(f"tts.codes.frame{step}", codes, f"after frame {step}: one more code pair")
        if not ignore_stop and bool(out.stop[0, -1] > 0):
            stop_reason = "stop"
            break
        if step == cap - 1:
            break
        # the trace shows the first decode step in full, later ones not at all (the final codes below)
        trace.mute(step > 0)
        out = talker(frame, cache=cache) if use_cache else talker(codes, text_ids=text_ids)
        trace.mute(False)
    trace.record("tts.codes", codes, f"start + {codes.shape[1] - 1} frames (stopped by: {stop_reason})")
    return SpeechCodes(codes, stop_reason)


Vocoder = VocoderConfig | VocosTiny      # Griffin-Lim's settings, or the learned vocoder (omni train vocoder)


def vocoder_name(vocoder: Vocoder) -> str:
    """"griffin-lim" or "learned": the values of ``omni tts --vocoder``."""
    return "learned" if isinstance(vocoder, VocosTiny) else "griffin-lim"


def vocode(mel: torch.Tensor, mel_cfg: SpeechMelConfig, vocoder: Vocoder) -> torch.Tensor:
    """mel (T, n_mels) → wave (T × hop,) with either vocoder: (301, 128) → (385,280,)."""
    if isinstance(vocoder, VocosTiny):
        return vocoder.vocode(mel, mel_cfg)
    return mel_to_audio(mel, mel_cfg, vocoder)


@dataclass
class TTSResult:
    codes: torch.Tensor     # (1, 1 + n, K)
    mel: torch.Tensor       # (1 + n, n_mels)
    wave: torch.Tensor      # ((1 + n) · hop,) at mel_cfg.sample_rate
    stop_reason: str


@torch.no_grad()
def synthesize(text_ids: list[int] | torch.Tensor, talker: TalkerTiny, rvq: RVQ,
               mel_cfg: SpeechMelConfig = SpeechMelConfig(), vocoder: Vocoder = VocoderConfig(),
               ignore_stop: bool = False) -> TTSResult:
    """text ids (N,) → codes (1, 1+n, 2) → mel (1+n, 128) → wave ((1+n) × 1280,)."""
    check_parts(talker.cfg, rvq.cfg, mel_cfg)
    ids = torch.as_tensor(text_ids, dtype=torch.long).reshape(1, -1)             # (1, N)
    trace.record("tts.text_ids", ids, "text token ids", stage="tokenize")
    cap = talker.cfg.frame_cap(ids.shape[1])
    trace.record("tts.frame_cap", (cap,), f"frame budget max({talker.cfg.min_frames}, "
                 f"min({talker.cfg.max_frames}, {talker.cfg.frames_per_token} × {ids.shape[1]})) = {cap} "
                 f"@ {mel_cfg.frame_rate:g} Hz = {cap / mel_cfg.frame_rate:g} s", stage="duration")
    gen = generate_codes(talker, ids, ignore_stop=ignore_stop)                    # stage "talker generate"
    mel = rvq.decode(gen.codes)[0]                                                # (1 + n, n_mels)
    trace.record("tts.mel", mel, "one mel frame per code frame (start frame included)", stage="rvq decode")
    wave = vocode(mel, mel_cfg, vocoder)
    return TTSResult(gen.codes, mel, wave, gen.stop_reason)


def speak(text: str, tokenizer: BPETokenizer, talker: TalkerTiny, rvq: RVQ, out_path: str | os.PathLike,
          mel_cfg: SpeechMelConfig = SpeechMelConfig(), vocoder: Vocoder = VocoderConfig()) -> TTSResult:
    """The whole pipeline: text → wav file at mel_cfg.sample_rate (16 kHz)."""
    if not text.strip():
        raise ValueError("cannot speak empty text")
    ids = tokenizer.encode(text, add_bos=False)
    result = synthesize(ids, talker, rvq, mel_cfg, vocoder)
    save_audio(out_path, result.wave, mel_cfg.sample_rate)
    return result


def check_parts(talker: TalkerConfig, codec: CodecConfig, mel: SpeechMelConfig) -> None:
    """Raise ValueError unless the Talker, the codec and the speech mel fit together."""
    if codec.dim != mel.n_mels:
        raise ValueError(f"CodecConfig.dim={codec.dim} but the speech mel has n_mels={mel.n_mels}")
    if (talker.codebook_size, talker.n_codebooks) != (codec.codebook_size, codec.n_codebooks):
        raise ValueError(f"Talker speaks {talker.n_codebooks} × {talker.codebook_size} codes, the codec has "
                         f"{codec.n_codebooks} × {codec.codebook_size}")
