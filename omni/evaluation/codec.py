"""Held-out evaluation of the RVQ codec: how well 2 codes per 80 ms frame rebuild the speech mel.

    omni eval codec --ckpt checkpoints/codec/export --data data/medium --split test

Every frame of the split's TTS and ASR clips (the held-out ASR voice included)
goes through encode → decode; over all of them together:

* **mel L1**: mean |x − x̂| in the mel's domain (natural log of the magnitude
  mel, see :mod:`omni.audio.speech_mel`; 1.0 means a factor e ≈ 2.7 off).
* **SNR dB**: 10·log10(Σ (x − x̄)² / Σ (x − x̂)²), the mel around its mean
  (:func:`omni.models.rvq.reconstruction_metrics`).
* **usage** of each codebook: the share of its entries chosen at least once;
  **perplexity**: exp(entropy) of how often each entry is chosen (1 = one
  entry does everything; codebook_size = all entries evenly).

The SNR is also given per task: the TTS clips share one voice, while the ASR
test clips are spoken only by a held-out voice the codec never heard.

The issue sets no numeric goal for the codec, so ``goal`` is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch

from omni.audio.speech_mel import SpeechMelConfig
from omni.evaluation.metric import Metric
from omni.models.rvq import RVQ, code_counts, perplexity, reconstruction_metrics
from omni.exports import load_stage
from omni.training.speech import SPEECH_TASKS, clip_mels, split_records
from omni.training.stage import world_file

VOICES = {"tts": "the one TTS voice", "asr": "several voices; test: the held-out voice"}


def split_frames(world: str | Path, split: str, tasks: Sequence[str] = SPEECH_TASKS,
                 mel_cfg: SpeechMelConfig = SpeechMelConfig(), say: Callable[[str], None] = print
                 ) -> torch.Tensor:
    """All speech-mel frames of the split's clips, concatenated: (M, n_mels)."""
    return torch.cat(clip_mels(split_records(world, tasks, split, say), mel_cfg))


@torch.no_grad()
def codec_metrics(rvq: RVQ, frames: torch.Tensor) -> dict[str, float]:
    """frames (M, D) → loss, mel_l1, snr_db, usage_k (share of entries used), perplexity_k, over all M."""
    assert frames.dim() == 2 and frames.shape[1] == rvq.cfg.dim, \
        f"codec_metrics expects frames (M, {rvq.cfg.dim}), got {tuple(frames.shape)}"
    frames = frames.to(rvq.codebooks.device, torch.float32)
    loss, _ = rvq.loss(frames[None])                                           # (1, M, D) as one sequence
    codes = rvq.encode(frames[None])                                           # (1, M, K)
    recon = rvq.decode(codes)[0]                                               # (M, D)
    out = {"loss": float(loss)}
    out.update(reconstruction_metrics(frames, recon))
    counts = code_counts(codes, rvq.cfg.codebook_size)                         # (K, N)
    for k in range(rvq.cfg.n_codebooks):
        out[f"usage_{k}"] = float((counts[k] > 0).float().mean())
        out[f"perplexity_{k}"] = perplexity(counts[k])
    return out


def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", **kw) -> list[Metric]:
    """The exported codec ``ckpt`` on the world ``data``'s ``split`` → metrics (see the module docstring).

    kw: ``say`` (a print-like callable for progress lines; default print).
    """
    say = kw.pop("say", print)
    if kw:
        raise TypeError(f"omni.evaluation.codec.evaluate got unknown options {sorted(kw)}")
    rvq = load_stage("codec", ckpt, device).model
    world_file(data, "card.json")                  # a clear error if this is not a world folder
    per_task = {task: split_frames(data, split, [task], say=say) for task in SPEECH_TASKS
                if (Path(data) / f"{task}_{split}.jsonl").is_file()}
    if not per_task:
        raise ValueError(f"{data} has no {'/'.join(SPEECH_TASKS)} clips in its {split!r} split")
    frames = torch.cat(list(per_task.values()))
    m = codec_metrics(rvq, frames)
    N = rvq.cfg.codebook_size
    out = [Metric(f"mel L1 ({frames.shape[0]:,} {split} frames)", m["mel_l1"], "ln-mel"),
           Metric("mel SNR", m["snr_db"], "dB")]
    for task, f in per_task.items():               # the TTS voice is trained on; ASR test is a held-out voice
        out.append(Metric(f"mel SNR, {task} clips ({VOICES[task]})", codec_metrics(rvq, f)["snr_db"], "dB"))
    for k in range(rvq.cfg.n_codebooks):
        out.append(Metric(f"codebook {k} usage", 100 * m[f"usage_{k}"], "%"))
        out.append(Metric(f"codebook {k} perplexity", m[f"perplexity_{k}"], f"of {N}"))
    return out
