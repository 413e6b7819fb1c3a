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

import torch
import torch.nn.functional as F

from omni.audio.io import SAMPLE_RATE, load_audio
from omni.audio.tiny_mel import log_mel
from omni.data.manifest import SpeechRecord
from omni.cer import cer
from omni.tokenizer import CTC_BLANK_ID, CharVocab


class SpeechClips:
    """Map-style dataset: item i → {"mel": (F_i, 128) float32, "labels": (L_i,) int64}.

    Audio is read and analysed on access (a few milliseconds a clip), so a
    medium world's hours of speech never sit in memory.
    """

    def __init__(self, records: list[SpeechRecord], vocab: CharVocab | None = None):
        self.records, self.vocab = records, vocab or CharVocab()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        mel = log_mel(load_audio(r.audio, SAMPLE_RATE), what=str(r.audio))[0]       # (F_i, 128)
        return {"mel": mel, "labels": torch.tensor(self.vocab.encode(r.text), dtype=torch.long)}


def collate_speech(items: list[dict]) -> dict:
    """Right-pad mels (with 0: the encoder zeroes padding anyway) and labels (with the blank, never read)."""
    mel_lengths = torch.tensor([it["mel"].shape[0] for it in items], dtype=torch.long)
    label_lengths = torch.tensor([it["labels"].numel() for it in items], dtype=torch.long)
    B, n_mels = len(items), items[0]["mel"].shape[1]
    mel = torch.zeros(B, int(mel_lengths.max()), n_mels)                               # (B, F_max, 128)
    labels = torch.full((B, int(label_lengths.max())), CTC_BLANK_ID, dtype=torch.long)  # (B, L_max)
    for i, it in enumerate(items):
        mel[i, : mel_lengths[i]] = it["mel"]
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
    """Mean CTC loss (nats per character) of a collated batch, and the clip count."""
    mel = batch["mel"]
    if augment is not None:
        mel = augment(mel, batch["mel_lengths"])
    log_probs, out_lengths = model(mel, batch["mel_lengths"])                        # (B, T', V), (B,)
    loss = F.ctc_loss(log_probs.transpose(0, 1), batch["labels"], out_lengths, batch["label_lengths"],
                      blank=CTC_BLANK_ID, reduction="mean", zero_infinity=True)      # log_probs as (T', B, V)
    return loss, {"samples": mel.shape[0]}


@torch.no_grad()
def transcribe_clips(model, clips: SpeechClips, batch_size: int, device=None) -> tuple[list[str], float]:
    """Greedy transcripts of every clip, in order, and the mean CTC loss (nats per character)."""
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
        best = log_probs.argmax(dim=-1)                                               # (B, T')
        hyps += [clips.vocab.ctc_collapse(best[i, : int(out_lengths[i])].tolist()) for i in range(best.shape[0])]
    return hyps, total / n


def speech_cer(model, clips: SpeechClips, batch_size: int) -> dict:
    """``val_loss`` (nats per character) and ``val_cer`` (fraction, normalised text) over ``clips``."""
    hyps, loss = transcribe_clips(model, clips, batch_size)
    return {"val_loss": loss, "val_cer": cer([r.text for r in clips.records], hyps)}
