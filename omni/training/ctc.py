"""The ASR objective: speech clips → padded log-mel batches, CTC loss, SpecAugment-style masks, CER.

    SpeechRecord (wav, transcript) ──load_audio + tiny log-mel──▶ mel (F_i, 128), labels (L_i,)
    collate: mel padded to (B, F_max, 128) + mel_lengths (B,); labels padded to (B, L_max) + label_lengths (B,)
    ASRModel(mel, mel_lengths) ──▶ log_probs (B, T', 98), out_lengths (B,)
    CTC loss(log_probs (T', B, 98), labels, out_lengths, label_lengths), blank 0, zero_infinity

Clips too short for their transcript (CTC needs ``ctc_min_frames(text)``
encoder frames, :mod:`omni.data.quality`) are removed *before* training by
:func:`omni.data.quality.load_checked` and counted in its report under
"clip too short for its transcript under CTC"; ``zero_infinity=True`` is the
second line of defence (an impossible alignment gives an infinite loss, which
would otherwise poison the step: it becomes 0 with no gradient instead).

``ctc_loss(reduction="mean")`` divides each clip's loss by its transcript
length, then averages: the training loss is in nats per character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from omni.audio.io import SAMPLE_RATE, load_audio, resample
from omni.audio.tiny_mel import log_mel
from omni.data.manifest import SpeechRecord
from omni.cer import cer
from omni.data.quality import ctc_min_frames, encoder_frames
from omni.tokenizer import CTC_BLANK_ID, CharVocab


class SpeechClips:
    """Map-style dataset: item i → {"mel": (F_i, 128) float32, "labels": (L_i,) int64}.

    Audio is read and analysed on access (a few milliseconds a clip), so a
    medium world's hours of speech never sit in memory.

    ``speeds`` (training only, e.g. ``(0.9, 1.0, 1.1)``): speed perturbation
    (Ko et al. 2015). Each access draws one factor from torch's global RNG and
    plays the clip that much faster — resampled from ``16 kHz · factor`` to
    16 kHz, so tempo, pitch and formants all move by the factor, as from a
    speaker with a shorter or longer vocal tract. A factor that would leave the
    clip too few encoder frames for its transcript under CTC is not used.
    """

    def __init__(self, records: list[SpeechRecord], vocab: CharVocab | None = None,
                 speeds: tuple[float, ...] | None = None):
        self.records, self.vocab = records, vocab or CharVocab()
        self.speeds = tuple(speeds) if speeds else None
        assert self.speeds is None or all(0.5 <= f <= 2.0 for f in self.speeds), \
            f"speed factors must lie in [0.5, 2], got {self.speeds}"

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        wave = load_audio(r.audio, SAMPLE_RATE)                                       # (T,)
        if self.speeds is not None:
            wave = self._perturb(wave, r.text)
        mel = log_mel(wave, what=str(r.audio))[0]                                     # (F_i, 128)
        return {"mel": mel, "labels": torch.tensor(self.vocab.encode(r.text), dtype=torch.long)}

    def _perturb(self, wave: torch.Tensor, text: str) -> torch.Tensor:
        factor = self.speeds[int(torch.randint(len(self.speeds), ()))]
        if factor == 1.0:
            return wave
        fast = torch.from_numpy(resample(wave, round(SAMPLE_RATE * factor), SAMPLE_RATE))   # (T / factor,)
        return fast if encoder_frames(fast.numel()) >= ctc_min_frames(text) else wave


def pad_mels(mels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips' mels, each (F_i, 128) → right-padded with 0 (the encoder zeroes padding anyway) (B, F_max, 128),
    and their lengths (B,)."""
    mel_lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)
    mel = torch.zeros(len(mels), int(mel_lengths.max()), mels[0].shape[1])             # (B, F_max, 128)
    for i, m in enumerate(mels):
        mel[i, : mel_lengths[i]] = m
    return mel, mel_lengths


def collate_speech(items: list[dict]) -> dict:
    """Right-pad mels (:func:`pad_mels`) and labels (with the blank, never read)."""
    mel, mel_lengths = pad_mels([it["mel"] for it in items])
    label_lengths = torch.tensor([it["labels"].numel() for it in items], dtype=torch.long)
    labels = torch.full((len(items), int(label_lengths.max())), CTC_BLANK_ID, dtype=torch.long)  # (B, L_max)
    for i, it in enumerate(items):
        labels[i, : label_lengths[i]] = it["labels"]
    return {"mel": mel, "mel_lengths": mel_lengths, "labels": labels, "label_lengths": label_lengths}


@dataclass
class SpecAugment:
    """SpecAugment-style masking (Park et al. 2019, without time warping), training only.

    ``time_masks`` stripes of up to ``time_width`` frames and ``freq_masks``
    bands of up to ``freq_width`` mel bins per clip are set to the clip's mean
    log-mel value. Draws use torch's global RNG, which checkpoints save, so a
    resumed run masks exactly as an uninterrupted one.
    """
    time_masks: int = 2
    time_width: int = 20            # frames (10 ms each)
    freq_masks: int = 2
    freq_width: int = 16            # mel bins of 128

    def __call__(self, mel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """mel (B, T, F), lengths (B,) → a masked copy (B, T, F)."""
        B, T, n_mels = mel.shape
        mel = mel.clone()
        for b in range(B):
            n = int(lengths[b])
            fill = mel[b, :n].mean()
            for _ in range(self.time_masks):
                w = int(torch.randint(0, self.time_width + 1, ()))
                w = min(w, n // 5)                      # never hide more than a fifth of a clip per mask
                t0 = int(torch.randint(0, max(1, n - w), ()))
                mel[b, t0:t0 + w] = fill
            for _ in range(self.freq_masks):
                w = int(torch.randint(0, self.freq_width + 1, ()))
                f0 = int(torch.randint(0, n_mels - w + 1, ()))
                mel[b, :n, f0:f0 + w] = fill
        return mel


def ctc_loss(model, batch: dict, augment: SpecAugment | None = None):
    """Mean CTC loss (nats per character) of a collated batch, and the clip count.
    ``augment`` masks the batch only while ``model.training``: a validation loss is never masked."""
    mel = batch["mel"]
    if augment is not None and model.training:
        mel = augment(mel, batch["mel_lengths"])
    log_probs, out_lengths = model(mel, batch["mel_lengths"])                        # (B, T', V), (B,)
    loss = F.ctc_loss(log_probs.transpose(0, 1), batch["labels"], out_lengths, batch["label_lengths"],
                      blank=CTC_BLANK_ID, reduction="mean", zero_infinity=True)      # log_probs as (T', B, V)
    return loss, {"samples": mel.shape[0]}


@torch.no_grad()
def transcribe_clips(model, clips: SpeechClips, batch_size: int, device=None,
                     decoders: dict[str, Callable[[np.ndarray], str]] | None = None
                     ) -> tuple[list[str] | dict[str, list[str]], float]:
    """Transcripts of every clip, in order, and the mean CTC loss (nats per character).

    Greedy by default (a list of texts). ``decoders`` (name → function of one
    clip's log_probs (T', V) as numpy, e.g. :func:`omni.models.ctc_decode.beam_decode`)
    decode the same forward pass several ways: a dict name → list of texts."""
    device = device or next(model.parameters()).device
    hyps, total, n = [], 0.0, 0
    for start in range(0, len(clips), batch_size):
        batch = collate_speech([clips[i] for i in range(start, min(start + batch_size, len(clips)))])
        mel, lengths = batch["mel"].to(device), batch["mel_lengths"].to(device)
        log_probs, out_lengths = model(mel, lengths)
        loss = F.ctc_loss(log_probs.transpose(0, 1), batch["labels"].to(device), out_lengths,
                          batch["label_lengths"].to(device), blank=CTC_BLANK_ID, reduction="sum",
                          zero_infinity=True)
        total += float(loss)
        n += int(batch["label_lengths"].sum())
        if decoders is None:
            best = log_probs.argmax(dim=-1)                                           # (B, T')
            hyps += [clips.vocab.ctc_collapse(best[i, : int(out_lengths[i])].tolist()) for i in range(best.shape[0])]
        else:
            clip_lp = [log_probs[i, : int(out_lengths[i])].cpu().numpy() for i in range(log_probs.shape[0])]
            hyps += [{name: decode(lp) for name, decode in decoders.items()} for lp in clip_lp]
    if decoders is not None:
        return {name: [h[name] for h in hyps] for name in decoders}, total / n
    return hyps, total / n


def speech_cer(model, clips: SpeechClips, batch_size: int) -> dict:
    """``val_loss`` (nats per character) and ``val_cer`` (fraction, normalised text) over ``clips``."""
    hyps, loss = transcribe_clips(model, clips, batch_size)
    return {"val_loss": loss, "val_cer": cer([r.text for r in clips.records], hyps)}
