"""Held-out evaluation of the RVQ codec: how well 2 codes per 80 ms frame rebuild the speech mel.

    omni eval codec --ckpt checkpoints/codec/export --data data/medium --split test
                    [--asr checkpoints/audio/export [--vocoder checkpoints/vocoder/export]]

Every clip of the split's TTS and ASR clips (the held-out ASR voice included)
goes through encode → decode, each clip whole (a conv codec sees its neighbouring
frames); over all their frames together:

* **mel L1**: mean |x − x̂| in the mel's domain (natural log of the magnitude
  mel, see :mod:`omni.audio.speech_mel`; 1.0 means a factor e ≈ 2.7 off).
* **SNR dB**: 10·log10(Σ (x − x̄)² / Σ (x − x̂)²), the mel around its mean
  (:func:`omni.models.rvq.reconstruction_metrics`).
* **usage** of each codebook: the share of its entries chosen at least once;
  **perplexity**: exp(entropy) of how often each entry is chosen (1 = one
  entry does everything; codebook_size = all entries evenly).

The SNR is also given per task: the TTS clips share one voice, while the ASR
test clips are spoken only by a held-out voice the codec never heard.

With ``asr=DIR`` (``--asr``), the **codec ceiling**: what a perfect Talker could
reach. For each TTS sentence of the split, that ASR model transcribes the
original clip, Griffin-Lim of the true mel and of codec(true mel), and, with
``vocoder=DIR`` (``--vocoder``), the learned vocoder of both: the talker
evaluation's rows without a Talker (:func:`omni.evaluation.talker.decomposition`'s
first three steps), so two codecs can be compared before a Talker is trained on either.

The issue sets no numeric goal for the codec, so ``goal`` is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from omni.audio.griffin_lim import VocoderConfig
from omni.audio.io import load_audio
from omni.audio.speech_mel import SpeechMelConfig
from omni.cer import cer
from omni.evaluation.metric import Metric
from omni.evaluation.talker import VOCODER_NAMES, load_asr, transcribe
from omni.models.rvq import RVQ, code_counts, perplexity, reconstruction_metrics
from omni.exports import load_stage
from omni.pipelines.tts import Vocoder, vocode
from omni.training.speech import SPEECH_TASKS, clip_mels, split_records
from omni.training.stage import world_file

VOICES = {"tts": "the one TTS voice", "asr": "several voices; test: the held-out voice"}


def split_clips(world: str | Path, split: str, tasks: Sequence[str] = SPEECH_TASKS,
                mel_cfg: SpeechMelConfig = SpeechMelConfig(), say: Callable[[str], None] = print
                ) -> list[torch.Tensor]:
    """The speech mel of each of the split's clips: [(T_i, n_mels)]."""
    return clip_mels(split_records(world, tasks, split, say), mel_cfg)


def split_frames(world: str | Path, split: str, tasks: Sequence[str] = SPEECH_TASKS,
                 mel_cfg: SpeechMelConfig = SpeechMelConfig(), say: Callable[[str], None] = print
                 ) -> torch.Tensor:
    """All speech-mel frames of the split's clips, concatenated: (M, n_mels)."""
    return torch.cat(split_clips(world, split, tasks, mel_cfg, say))


@torch.no_grad()
def codec_metrics(rvq: RVQ, clips: Sequence[torch.Tensor]) -> dict[str, float]:
    """clips [(T_i, D)] → loss, mel_l1, snr_db, usage_k (share of entries used), perplexity_k, over all frames.

    Each clip is coded whole; the identity codec has no context, so its frames go as one sequence.
    """
    D = rvq.cfg.dim
    bad = [tuple(c.shape) for c in clips if c.dim() != 2 or c.shape[1] != D]
    assert not bad, f"codec_metrics expects clips (T_i, {D}), got {bad[:3]}"
    seqs = [torch.cat(list(clips))] if rvq.cfg.encoder == "identity" else list(clips)
    seqs = [c.to(rvq.codebooks.device, torch.float32)[None] for c in seqs]    # each (1, T_i, D)
    frames = torch.cat([s[0] for s in seqs])                                   # (M, D)
    loss = sum(float(rvq.loss(s)[0]) * s.shape[1] for s in seqs) / frames.shape[0]   # frame-weighted mean
    codes = [rvq.encode(s) for s in seqs]                                      # each (1, T_i, K)
    recon = torch.cat([rvq.decode(c)[0] for c in codes])                       # (M, D)
    codes = torch.cat(codes, dim=1)                                            # (1, M, K)
    out = {"loss": loss}
    out.update(reconstruction_metrics(frames, recon))
    counts = code_counts(codes, rvq.cfg.codebook_size)                         # (K, N)
    for k in range(rvq.cfg.n_codebooks):
        out[f"usage_{k}"] = float((counts[k] > 0).float().mean())
        out[f"perplexity_{k}"] = perplexity(counts[k])
    return out


@torch.no_grad()
def codec_ceiling(rvq: RVQ, data: Path, split: str, asr: str | Path, vocoder: str | Path | None,
                  device: str, batch_size: int = 16, say: Callable[[str], None] = print) -> list[Metric]:
    """The ASR's CER on the split's TTS sentences: the originals, then per vocoder (Griffin-Lim, and
    the learned one if ``vocoder``) the true mel and codec(true mel)."""
    mel_cfg = SpeechMelConfig()
    records = split_records(data, ["tts"], split, say)
    mels = [m.to(device) for m in clip_mels(records, mel_cfg)]                # each (T_i, 128)
    coded = [rvq.decode(rvq.encode(m[None]))[0] for m in mels]                # each (T_i, 128)
    vocoders: dict[str, Vocoder] = {"griffin-lim": VocoderConfig()}
    if vocoder is not None:
        vocoders["learned"] = load_stage("vocoder", vocoder, device, flag="--vocoder").model
    judge = load_asr(asr, device)
    texts = [r.text for r in records]

    def rate(waves) -> float:
        return 100 * cer(texts, transcribe(judge, waves, batch_size))

    n = len(records)
    rows = [Metric(f"CER, original clips ({n} {split} TTS sentences)", rate([load_audio(r.audio) for r in records]),
                   "%")]
    for name, v in vocoders.items():
        label = VOCODER_NAMES[name]
        rows += [Metric(f"CER, {label} of the true mel (vocoder ceiling)",
                        rate([vocode(m, mel_cfg, v) for m in mels]), "%"),
                 Metric(f"CER, {label} of codec(true mel) (codec ceiling: a perfect Talker)",
                        rate([vocode(m, mel_cfg, v) for m in coded]), "%")]
    return rows


def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", *,
             asr: str | Path | None = None, vocoder: str | Path | None = None, batch_size: int = 16,
             say: Callable[[str], None] = print) -> list[Metric]:
    """The exported codec ``ckpt`` on the world ``data``'s ``split`` → metrics (see the module docstring).

    ``asr``: an ASR export, for the codec ceiling's CER rows (None: skipped); ``vocoder``: a learned
    vocoder's export, for its rows beside Griffin-Lim's (needs ``asr``).
    """
    if vocoder is not None and asr is None:
        raise ValueError("vocoder=DIR gives the codec ceiling's learned-vocoder rows, which need an ASR judge: "
                         "pass asr=DIR (--asr) as well")
    rvq = load_stage("codec", ckpt, device).model
    world_file(data, "card.json")                  # a clear error if this is not a world folder
    per_task = {task: split_clips(data, split, [task], say=say) for task in SPEECH_TASKS
                if (Path(data) / f"{task}_{split}.jsonl").is_file()}
    if not per_task:
        raise ValueError(f"{data} has no {'/'.join(SPEECH_TASKS)} clips in its {split!r} split")
    clips = [c for task_clips in per_task.values() for c in task_clips]
    m = codec_metrics(rvq, clips)
    N = rvq.cfg.codebook_size
    n_frames = sum(c.shape[0] for c in clips)
    out = [Metric(f"mel L1 ({n_frames:,} {split} frames)", m["mel_l1"], "ln-mel"),
           Metric("mel SNR", m["snr_db"], "dB")]
    for task, f in per_task.items():               # the TTS voice is trained on; ASR test is a held-out voice
        out.append(Metric(f"mel SNR, {task} clips ({VOICES[task]})", codec_metrics(rvq, f)["snr_db"], "dB"))
    for k in range(rvq.cfg.n_codebooks):
        out.append(Metric(f"codebook {k} usage", 100 * m[f"usage_{k}"], "%"))
        out.append(Metric(f"codebook {k} perplexity", m[f"perplexity_{k}"], f"of {N}"))
    if asr is None:
        say("[codec] no --asr: the codec ceiling's CER was skipped (pass asr=DIR, e.g. checkpoints/audio/export)")
        return out
    return codec_ceiling(rvq, Path(data), split, asr, vocoder, device, batch_size, say) + out
