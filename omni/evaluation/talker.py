"""Held-out evaluation of the Talker: does it say what it was asked to say?

    omni eval talker --ckpt checkpoints/talker/export --data data/medium --split test
    (options: codec=checkpoints/codec/export, asr=checkpoints/audio/export, max_items=None)

For each held-out TTS sentence of the split:

    text ──speak (omni.pipelines.tts.synthesize: Talker → RVQ decode → Griffin-Lim)──▶ wave
        ──ASRModel.transcribe──▶ hypothesis ──normalise, CER──▶ vs. the sentence

**TTS round-trip CER** (goal ≤ 30 % for the cpu presets) is the character error
rate of the ASR transcript of the Talker's speech. Three ceilings are reported
next to it, from the same ASR model: the original clip (how well the ASR hears
the TTS voice at all), Griffin-Lim of the clip's true speech mel (what the
vocoder alone costs), and the clip's *reference* codes through the codec and
the vocoder (the best a perfect Talker could do with this codec). Also:

* **teacher-forced code accuracy**: argmax of the base / residual logits
  given the true previous frames, over every real frame of the split;
* **mean generated length vs. mean reference length** (frames of 80 ms), and
  the share of sentences the stop head ended (the rest ran to Part 5's cap).

CER is the ASR stage's (:mod:`omni.cer`: lower case, punctuation
→ space, apostrophes inside words kept, whitespace collapsed; Σ edit distance
/ Σ reference characters), reported in %.
``asr=None`` skips everything that needs an ASR model (stated in the output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from omni.audio.griffin_lim import VocoderConfig, mel_to_audio
from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig
from omni.audio.tiny_mel import log_mel_batch
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.models.talker import TalkerTiny, shift_codes, talker_loss
from omni.pipelines.tts import check_parts, generate_codes, synthesize
from omni.exports import load_stage
from omni.training.speech import check_codec, clip_mels, pad_talker_batch, split_records, talker_items
from omni.training.stage import sibling_export

SIBLING = "sibling"     # default: the codec / ASR export next to the Talker's (ROOT/<stage>/export)
CER_GOAL = 30.0          # %, the goal for the cpu presets


# -- teacher forcing -----------------------------------------------------------


@torch.no_grad()
def teacher_forced(talker: TalkerTiny, items: Sequence[dict], batch_size: int) -> dict[str, float]:
    """Loss and code accuracy given the true previous frames, over every real frame of ``items``.

    → val_loss (talker_loss, frame-weighted mean), acc_base, acc_residual, acc_stop (fractions).
    """
    device = next(talker.parameters()).device
    loss_sum, right, frames = 0.0, torch.zeros(3), 0
    for i in range(0, len(items), batch_size):
        b = {k: v.to(device) for k, v in pad_talker_batch(items[i:i + batch_size]).items()}
        codes, lengths = b["codes"], b["lengths"]                                     # (B, T, K), (B,)
        loss, _ = talker_loss(talker, b["text"], codes, lengths, b["text_pad"])
        out = talker(shift_codes(codes), text_ids=b["text"], text_pad_mask=b["text_pad"])
        T = codes.shape[1]
        valid = torch.arange(T, device=device)[None] < lengths[:, None]               # (B, T)
        last = torch.arange(T, device=device)[None] == (lengths[:, None] - 1)         # (B, T) stop targets
        hits = torch.stack([out.base.argmax(-1) == codes[..., 0], out.residual.argmax(-1) == codes[..., 1],
                            (out.stop > 0) == last])                                  # (3, B, T)
        n = int(valid.sum())
        right += hits[:, valid].sum(-1).float().cpu()
        loss_sum += float(loss) * n
        frames += n
    acc = (right / frames).tolist()
    return {"val_loss": loss_sum / frames, "acc_base": acc[0], "acc_residual": acc[1], "acc_stop": acc[2]}


# -- the round trip ------------------------------------------------------------


def load_asr(asr_dir: str | Path, device: str):
    """The exported ASR model (``omni/models/asr.py``, the audio stage's export)."""
    asr_dir = Path(asr_dir)
    if not (asr_dir / "config.json").is_file():
        raise FileNotFoundError(f"no ASR model at {asr_dir} (config.json missing): train the audio stage "
                                f"(omni train audio), pass asr=DIR, or asr=None to skip the round trip")
    return load_stage("audio", asr_dir, device, flag="asr=DIR").model


@torch.no_grad()
def transcribe(asr, waves: Sequence[torch.Tensor], batch_size: int = 16) -> list[str]:
    """16 kHz waves → ASR transcripts (the tiny log-mel front end, then greedy CTC)."""
    device = next(asr.parameters()).device
    out = []
    for i in range(0, len(waves), batch_size):
        mel, lengths = log_mel_batch([w.float().cpu() for w in waves[i:i + batch_size]])   # (B, F, 128), (B,)
        out += asr.transcribe(mel.to(device), lengths.to(device))
    return out


def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", *,
             codec: str | Path = SIBLING, asr: str | Path | None = SIBLING, max_items: int | None = None,
             batch_size: int = 16, say: Callable[[str], None] = print) -> list[Metric]:
    """The exported Talker ``ckpt`` (with its tokenizer.model) on the world ``data``'s TTS ``split``.

    ``codec`` and ``asr`` default to the exports beside ``ckpt`` (``ROOT/codec/export``,
    ``ROOT/audio/export``); ``asr=None`` skips the round trip and says so.
    """
    ckpt = Path(ckpt)
    codec = sibling_export(ckpt, "codec") if codec == SIBLING else codec
    asr = sibling_export(ckpt, "audio") if asr == SIBLING else asr
    loaded = load_stage("talker", ckpt, device)           # the same checks inference makes, tokenizer included
    talker, tok = loaded.model, loaded.tokenizer
    check_codec(ckpt, codec)
    rvq = load_stage("codec", codec, device, flag="codec=DIR").model
    mel_cfg, vocoder = SpeechMelConfig(), VocoderConfig()
    check_parts(talker.cfg, rvq.cfg, mel_cfg)
    records = split_records(data, ["tts"], split, say)[:max_items]
    mels = clip_mels(records, mel_cfg)
    items = talker_items(records, mels, rvq, tok, talker.cfg.max_text_tokens, talker.cfg.max_frames)

    tf = teacher_forced(talker, items, batch_size)
    ref_len = sum(m.shape[0] for m in mels) / len(mels)
    out = [Metric("teacher-forced loss", tf["val_loss"], "nats/frame"),
           Metric("teacher-forced code accuracy, base", 100 * tf["acc_base"], "%"),
           Metric("teacher-forced code accuracy, residual", 100 * tf["acc_residual"], "%")]

    gen_len, stopped, waves = [], 0, []
    for it in items:
        ids = it["text"].to(device)
        if asr is None:
            result = generate_codes(talker, ids[None])                     # codes only: no vocoder needed
        else:
            result = synthesize(ids, talker, rvq, mel_cfg, vocoder)        # codes → mel → wave
            waves.append(result.wave)
        gen_len.append(result.codes.shape[1] - 1)                          # the start frame is not generated
        stopped += result.stop_reason == "stop"
    out += [Metric("mean generated length", sum(gen_len) / len(gen_len), "frames"),
            Metric("mean reference length", ref_len, "frames"),
            Metric("sentences ended by the stop head", 100 * stopped / len(items), "%")]

    if asr is None:
        say("[talker] asr=None: the round-trip CER needs an ASR model and was skipped")
        return out
    model = load_asr(asr, device)
    texts = [r.text for r in records]
    codec_waves = [mel_to_audio(rvq.decode(it["codes"][None].to(device))[0], mel_cfg, vocoder) for it in items]
    hyps = transcribe(model, waves, batch_size)
    codec_hyps = transcribe(model, codec_waves, batch_size)
    vocoder_hyps = transcribe(model, [mel_to_audio(m.to(device), mel_cfg, vocoder) for m in mels], batch_size)
    clip_hyps = transcribe(model, [load_audio(r.audio) for r in records], batch_size)
    for text, hyp in list(zip(texts, hyps))[:3]:
        say(f"[talker] {text!r} → {hyp!r}")
    rt = 100 * cer(texts, hyps)
    return [Metric(f"TTS round-trip CER ({len(items)} {split} sentences)", rt, "%", f"≤ {CER_GOAL:g} %",
                   rt <= CER_GOAL),
            Metric("CER, reference codes (codec + Griffin-Lim ceiling)", 100 * cer(texts, codec_hyps), "%"),
            Metric("CER, Griffin-Lim of the true mel (vocoder ceiling)", 100 * cer(texts, vocoder_hyps), "%"),
            Metric("CER, original clips (ASR on the TTS voice)", 100 * cer(texts, clip_hyps), "%"),
            *out]
