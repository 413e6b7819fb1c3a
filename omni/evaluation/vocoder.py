"""Held-out evaluation of the learned vocoder: can the ASR understand VocosTiny(true mel)?

    omni eval vocoder --ckpt checkpoints/vocoder/export --data data/medium --split test
    (options: asr=checkpoints/audio/export, max_items=None)

For each held-out TTS sentence of the split, the same ASR model (the audio stage's export,
beside the vocoder's by default) transcribes

* the **original clip** (how well the ASR hears the TTS voice at all),
* **Griffin-Lim(true mel)**: the seed's vocoder on the clip's speech mel,
* **VocosTiny(true mel)**: this stage's vocoder on the same mel (the goal: ≤ 1.5 × the originals' CER),

and the vocoder's own loss (:func:`omni.models.vocoder.vocoder_loss`) over the whole clips.
``asr=None`` skips the CERs (stated in the output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from omni.audio.griffin_lim import VocoderConfig
from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig, num_samples
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.evaluation.talker import SIBLING, load_asr, transcribe
from omni.exports import load_stage
from omni.models.vocoder import vocoder_loss
from omni.pipelines.tts import vocode
from omni.training.speech import clip_mels, split_records
from omni.training.stage import sibling_export

CEILING_RATIO_GOAL = 1.5     # learned(true mel) CER ≤ 1.5 × the original clips' CER


def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", *,
             asr: str | Path | None = SIBLING, max_items: int | None = None, batch_size: int = 16,
             say: Callable[[str], None] = print) -> list[Metric]:
    """The exported vocoder ``ckpt`` on the world ``data``'s TTS ``split`` (see the module docstring)."""
    ckpt = Path(ckpt)
    asr = sibling_export(ckpt, "audio") if asr == SIBLING else asr
    model = load_stage("vocoder", ckpt, device).model
    mel_cfg = SpeechMelConfig()
    records = split_records(data, ["tts"], split, say)[:max_items]
    mels = clip_mels(records, mel_cfg)                                          # each (T_i, 128)
    clips = [load_audio(r.audio, mel_cfg.sample_rate) for r in records]
    learned = [vocode(m, mel_cfg, model) for m in mels]                         # each (T_i × 1280,)
    with torch.no_grad():
        losses = [vocoder_loss(w[None], c[:num_samples(m.shape[0], mel_cfg)][None].to(w.device))
                  for w, c, m in zip(learned, clips, mels)]
    out = [Metric(f"vocoder loss ({len(records)} {split} clips)", sum(float(l) for l, _ in losses) / len(losses), ""),
           Metric("ASR-mel L1", sum(m["asr_mel_l1"] for _, m in losses) / len(losses), "log10")]
    if asr is None:
        say("[vocoder] asr=None: the CERs need an ASR model and were skipped")
        return out
    judge = load_asr(asr, device)
    texts = [r.text for r in records]
    original = 100 * cer(texts, transcribe(judge, clips, batch_size))
    gl = 100 * cer(texts, transcribe(judge, [vocode(m, mel_cfg, VocoderConfig()) for m in mels], batch_size))
    mine = 100 * cer(texts, transcribe(judge, learned, batch_size))
    goal = CEILING_RATIO_GOAL * original
    return [Metric(f"CER, learned vocoder of the true mel ({len(records)} {split} sentences)", mine, "%",
                   f"≤ {CEILING_RATIO_GOAL:g} × originals = {goal:.1f} %", mine <= goal),
            Metric("CER, Griffin-Lim of the true mel", gl, "%"),
            Metric("CER, original clips (ASR on the TTS voice)", original, "%"),
            *out]
