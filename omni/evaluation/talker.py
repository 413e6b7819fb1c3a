"""Held-out evaluation of the Talker: does it say what it was asked to say?

    omni eval talker --ckpt checkpoints/talker/export --data data/medium --split test
    (options: codec=, asr=, vocoder= (each defaults to the export beside the Talker's), max_items=None)

For each held-out TTS sentence of the split, the same ASR model transcribes the
**decomposition** of the round trip, one step at a time, for each vocoder (Griffin-Lim,
and the learned VocosTiny when its export is there):

    original clip ──▶ vocoder(true mel) ──▶ vocoder(codec(true mel)) ──▶ vocoder(Talker codes)
    (the ASR alone)   (what the vocoder costs)  (+ the codec: a perfect Talker)  (the TTS round trip)

so each step's loss is visible. **TTS round-trip CER** is the last column: goal ≤ 30 %
with the learned vocoder, ≤ 50 % with Griffin-Lim (cpu presets). Also:

* **teacher-forced code accuracy**: argmax of the base / residual logits
  given the true previous frames, over every real frame of the split;
* **mean generated length vs. mean reference length** (frames of 80 ms; goal within ±15 %),
  and the share of sentences the stop head ended (goal ≥ 95 %; the rest ran to Part 5's cap).

CER is the ASR stage's (:mod:`omni.cer`: lower case, punctuation
→ space, apostrophes inside words kept, whitespace collapsed; Σ edit distance
/ Σ reference characters), reported in %.
``asr=None`` skips everything that needs an ASR model, ``vocoder=None`` the learned vocoder's
rows (each stated in the output); a default vocoder export that does not exist is skipped and said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from omni.audio.griffin_lim import VocoderConfig
from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig
from omni.audio.tiny_mel import log_mel_batch
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.exports import load_stage
from omni.models.talker import TalkerTiny, shift_codes, talker_loss
from omni.models.vocoder import VocosTiny
from omni.pipelines.tts import Vocoder, check_parts, generate_codes, vocode
from omni.training.speech import check_codec, clip_mels, pad_talker_batch, split_records, talker_items
from omni.training.stage import sibling_export

SIBLING = "sibling"     # default: the codec / ASR export next to the Talker's (ROOT/<stage>/export)
CER_GOALS = {"learned": 30.0, "griffin-lim": 50.0}   # %, round-trip goals of the cpu presets per vocoder
STOP_GOAL = 95.0         # %, sentences the stop head must end
LENGTH_GOAL = 15.0       # %, |mean generated − mean reference| / mean reference
VOCODER_NAMES = {"griffin-lim": "Griffin-Lim", "learned": "learned vocoder"}


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


def learned_vocoder(vocoder: str | Path | None, ckpt: Path, device: str,
                    say: Callable[[str], None]) -> VocosTiny | None:
    """The learned vocoder's export: ``vocoder`` (an error if absent), the sibling of ``ckpt`` if it
    exists (``vocoder=SIBLING``; said and skipped if not), or None (``vocoder=None``)."""
    if vocoder is None:
        return None
    folder = sibling_export(ckpt, "vocoder") if vocoder == SIBLING else Path(vocoder)
    if vocoder == SIBLING and not (folder / "config.json").is_file():
        say(f"[talker] no learned vocoder at {folder}: its rows are skipped (train it: omni train vocoder)")
        return None
    return load_stage("vocoder", folder, device, flag="vocoder=DIR").model


def decomposition(texts: Sequence[str], clip_hyps: Sequence[str], waves: dict[str, dict[str, list]],
                  asr, batch_size: int, n: int, split: str) -> list[Metric]:
    """The CER rows: the originals, then per vocoder its ceiling, the codec ceiling and the round trip (with its goal).

    waves[vocoder]["true mel" | "codec" | "talker"] = the waves of each sentence.
    """
    rows = [Metric("CER, original clips (ASR on the TTS voice)", 100 * cer(texts, clip_hyps), "%")]
    for name, by_step in waves.items():
        cers = {step: 100 * cer(texts, transcribe(asr, w, batch_size)) for step, w in by_step.items()}
        goal, label = CER_GOALS[name], VOCODER_NAMES[name]
        rows += [Metric(f"CER, {label} of the true mel (vocoder ceiling)", cers["true mel"], "%"),
                 Metric(f"CER, {label} of codec(true mel) (reference codes: a perfect Talker)", cers["codec"], "%"),
                 Metric(f"TTS round-trip CER, {label} ({n} {split} sentences)", cers["talker"], "%",
                        f"≤ {goal:g} %", cers["talker"] <= goal)]
    return rows


def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", *,
             codec: str | Path = SIBLING, asr: str | Path | None = SIBLING, vocoder: str | Path | None = SIBLING,
             max_items: int | None = None, batch_size: int = 16, say: Callable[[str], None] = print) -> list[Metric]:
    """The exported Talker ``ckpt`` (with its tokenizer.model) on the world ``data``'s TTS ``split``.

    ``codec``, ``asr`` and ``vocoder`` default to the exports beside ``ckpt`` (``ROOT/codec/export``,
    ``ROOT/audio/export``, ``ROOT/vocoder/export``); ``asr=None`` skips the round trip and says so.
    """
    ckpt = Path(ckpt)
    codec = sibling_export(ckpt, "codec") if codec == SIBLING else codec
    asr = sibling_export(ckpt, "audio") if asr == SIBLING else asr
    loaded = load_stage("talker", ckpt, device)           # the same checks inference makes, tokenizer included
    talker, tok = loaded.model, loaded.tokenizer
    check_codec(ckpt, codec)
    rvq = load_stage("codec", codec, device, flag="codec=DIR").model
    mel_cfg = SpeechMelConfig()
    check_parts(talker.cfg, rvq.cfg, mel_cfg)
    records = split_records(data, ["tts"], split, say)[:max_items]
    mels = clip_mels(records, mel_cfg)
    items = talker_items(records, mels, rvq, tok, talker.cfg.max_text_tokens, talker.cfg.max_frames)

    tf = teacher_forced(talker, items, batch_size)
    ref_len = sum(m.shape[0] for m in mels) / len(mels)
    out = [Metric("teacher-forced loss", tf["val_loss"], "nats/frame"),
           Metric("teacher-forced code accuracy, base", 100 * tf["acc_base"], "%"),
           Metric("teacher-forced code accuracy, residual", 100 * tf["acc_residual"], "%")]

    gen_len, stopped, talker_mels = [], 0, []
    for it in items:
        result = generate_codes(talker, it["text"].to(device)[None])
        talker_mels.append(rvq.decode(result.codes)[0])                    # (1 + n, 128), start frame included
        gen_len.append(result.codes.shape[1] - 1)                          # the start frame is not generated
        stopped += result.stop_reason == "stop"
    mean_len, stop_share = sum(gen_len) / len(gen_len), 100 * stopped / len(items)
    off = 100 * abs(mean_len - ref_len) / ref_len
    out += [Metric("mean generated length", mean_len, "frames"),
            Metric("mean reference length", ref_len, "frames"),
            Metric("mean generated length vs reference", off, "% off", f"≤ {LENGTH_GOAL:g} %", off <= LENGTH_GOAL),
            Metric("sentences ended by the stop head", stop_share, "%", f"≥ {STOP_GOAL:g} %", stop_share >= STOP_GOAL)]

    if asr is None:
        say("[talker] asr=None: the round-trip CER needs an ASR model and was skipped")
        return out
    vocoders: dict[str, Vocoder] = {"griffin-lim": VocoderConfig()}
    learned = learned_vocoder(vocoder, ckpt, device, say)
    if learned is not None:
        vocoders = {"learned": learned, **vocoders}
    codec_mels = [rvq.decode(it["codes"][None].to(device))[0] for it in items]
    steps = {"true mel": [m.to(device) for m in mels], "codec": codec_mels, "talker": talker_mels}
    waves = {name: {step: [vocode(m, mel_cfg, v) for m in ms] for step, ms in steps.items()}
             for name, v in vocoders.items()}
    model = load_asr(asr, device)
    texts = [r.text for r in records]
    first = next(iter(waves))
    for text, hyp in list(zip(texts, transcribe(model, waves[first]["talker"][:3], batch_size))):
        say(f"[talker] {text!r} → {hyp!r} ({VOCODER_NAMES[first]})")
    clip_hyps = transcribe(model, [load_audio(r.audio) for r in records], batch_size)
    return [*decomposition(texts, clip_hyps, waves, model, batch_size, len(items), split), *out]
