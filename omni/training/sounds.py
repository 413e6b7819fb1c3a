"""The sound-attribute objective of the audio stage: music clips → what they play.

    AudioQARecord "describe the sound." → its answer parsed (omni.data.music.sound_labels)
        → labels (6,): instrument, kind, speed, loudness, note, quality (class ids of SOUND_ATTRIBUTES)
    collate: mel padded to (B, F_max, 128) + mel_lengths (B,); labels (B, 6)
    ASRModel.sound_logits(mel, mel_lengths) → (B, Σ classes) → one cross-entropy per attribute, summed

The world's music clips each have one "describe the sound." question whose
answer names every attribute, so the labels come from the manifests already
written (no side file). The loss is the sum over the six attributes; the
accuracy of an attribute counts only the clips it applies to (the note of a
note or chord, the quality of a chord or melody).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omni.data.dialogue import load_mel
from omni.data.music import SOUND_ATTRIBUTES, sound_labels
from omni.training.ctc import pad_mels

DESCRIBE = "describe the sound."
SOUND_CLASSES = [len(v) for v in SOUND_ATTRIBUTES.values()]
NOT_APPLICABLE = "-"
NOT_APPLICABLE_ID = {a: classes.index(NOT_APPLICABLE) if NOT_APPLICABLE in classes else -1   # -1: never a label
                     for a, classes in SOUND_ATTRIBUTES.items()}


class SoundClips:
    """Map-style dataset: item i → {"mel": (F_i, 128) float32, "labels": (6,) int64}, one per described clip."""

    def __init__(self, records: list):
        self.records = [r for r in records if r.question == DESCRIBE]
        if not self.records:
            raise ValueError(f"no {DESCRIBE!r} question among {len(records)} audio-QA records: the sound head "
                             f"reads its labels from those answers")
        parsed = [sound_labels(r.answer) for r in self.records]
        self.labels = torch.tensor([[SOUND_ATTRIBUTES[a].index(lab[a]) for a in SOUND_ATTRIBUTES] for lab in parsed],
                                   dtype=torch.long)                                 # (N, 6), SOUND_ATTRIBUTES order

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        return {"mel": load_mel(r.audio, r.segment), "labels": self.labels[i]}


def collate_sounds(items: list[dict]) -> dict:
    """Right-pad mels (:func:`~omni.training.ctc.pad_mels`): mel (B, F_max, 128), mel_lengths (B,), labels (B, 6)."""
    mel, mel_lengths = pad_mels([it["mel"] for it in items])
    return {"mel": mel, "mel_lengths": mel_lengths, "labels": torch.stack([it["labels"] for it in items])}


def sound_loss(model, batch: dict) -> torch.Tensor:
    """Σ over attributes of the mean cross-entropy of ``model.sound_logits`` against ``batch["labels"]``."""
    logits = model.sound_logits(batch["mel"], batch["mel_lengths"])                    # (B, Σ classes)
    parts = model.sound_head.split(logits.float())                                    # each (B, classes_k)
    return sum(F.cross_entropy(p, batch["labels"][:, k]) for k, p in enumerate(parts))


@torch.no_grad()
def sound_accuracy(model, clips: SoundClips, batch_size: int) -> dict[str, float]:
    """Attribute → accuracy over the clips it applies to (labels other than "-")."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    right = torch.zeros(len(SOUND_ATTRIBUTES))
    count = torch.zeros(len(SOUND_ATTRIBUTES))
    for start in range(0, len(clips), batch_size):
        batch = collate_sounds([clips[i] for i in range(start, min(start + batch_size, len(clips)))])
        logits = model.sound_logits(batch["mel"].to(device), batch["mel_lengths"].to(device))
        for k, (attribute, part) in enumerate(zip(SOUND_ATTRIBUTES, model.sound_head.split(logits))):
            labels = batch["labels"][:, k]
            applies = labels != NOT_APPLICABLE_ID[attribute]                           # (B,)
            right[k] += float(((part.argmax(-1).cpu() == labels) & applies).sum())
            count[k] += float(applies.sum())
    model.train(was_training)
    return {a: float(right[k] / count[k]) if count[k] else float("nan") for k, a in enumerate(SOUND_ATTRIBUTES)}
