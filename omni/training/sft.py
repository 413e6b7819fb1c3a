"""The supervised fine-tuning objective of the omni model: mixed batches, answer-only loss.

A batch mixes dialogues with an image, an audio clip, two of them or none, so
rows have different layouts and lengths. Each row is fused alone
(:meth:`OmniModel.fuse_parts`, the template of :mod:`omni.data.dialogue`), then
the rows are right-padded into one batch::

    row 0  [BOS user: ] [img] [what colour … assistant:] [▁black EOS] pad pad …
    row 1  [BOS user: ] [audio × 38] [is it loud … assistant:] [▁loud EOS]
    labels -100 everywhere but the answer tokens (and their EOS); padding -100

Labels come from :meth:`Fusion.labels` (Hugging Face alignment: the loss
compares ``logits[:, :-1]`` with ``labels[:, 1:]``). Right padding is harmless
under causal attention: no real position attends to a later one.

A batch whose labels are all -100 has nothing to learn from; it is an error
(:class:`AllMaskedError`), never a zero loss that would quietly count as a step.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from omni.data.dialogue import DialogueExample, load_example, token_count
from omni.models.omni_model import OmniModel
from omni.nn import check_finite
from omni.nn.cross_entropy import IGNORE_INDEX, shifted_cross_entropy


class AllMaskedError(ValueError):
    """Every label of a batch is -100: the loss would be 0/0."""


# ---------------------------------------------------------------------------
# Data: records that fit the context, decoded on demand
# ---------------------------------------------------------------------------
@dataclass
class LengthReport:
    kept: int
    dropped: Counter            # reason → count
    longest_kept: int

    def summary(self) -> str:
        gone = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items())) or "none"
        return f"{self.kept} dialogues fit (longest {self.longest_kept} tokens); dropped: {gone}"


def fit_to_context(records: Sequence, tokenizer, model_cfg) -> tuple[list, LengthReport]:
    """Keep the records whose fused sequence fits ``ctx_len`` and whose clips fit the per-clip limit.

    Every record left out is counted by reason (nothing vanishes silently).
    """
    ctx, per_clip = model_cfg.thinker.ctx_len, model_cfg.max_audio_tokens
    kept, dropped, longest = [], Counter(), 0
    for r in records:
        total, clip = token_count(r, tokenizer, model_cfg.image_tokens)
        if clip > per_clip:
            dropped[f"with a clip over {per_clip} audio tokens"] += 1
        elif total > ctx:
            dropped[f"longer than ctx_len {ctx}"] += 1
        else:
            kept.append(r)
            longest = max(longest, total)
    return kept, LengthReport(len(kept), dropped, longest)


class DialogueDataset:
    """Map-style: ``ds[i]`` decodes record i's media and tokenizes it (nothing is cached);
    ``learn`` ("last" | "all") says which assistant turns the loss covers."""

    def __init__(self, records: Sequence, tokenizer, image_size: int, learn: str = "last"):
        self.records, self.tokenizer, self.image_size, self.learn = list(records), tokenizer, image_size, learn

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> DialogueExample:
        return load_example(self.records[i], self.tokenizer, self.image_size, learn=self.learn)


def pack_questions(records: Sequence, per_dialogue: int, seed: int = 0) -> tuple[list, int]:
    """Regroup one-question dialogues about one image or one clip into dialogues of up to ``per_dialogue``.

    A world dialogue "user: <image> q · assistant: a" spends a whole ViT pass and
    a whole Thinker row on one or two answer tokens. Here the one-turn dialogues
    with a single medium (one image, or one clip and its segment) that share that
    medium become one dialogue: the first user turn keeps the marker, the next
    ones ask the next questions about the same medium (order shuffled with
    ``seed``). Learn every turn (``learn="all"``) so each answer is a target.
    Other dialogues pass through unchanged.

    Returns (records, how many one-question dialogues were packed).
    """
    import random

    from omni.data.manifest import AUDIO_MARKER, IMAGE_MARKER, Message

    if per_dialogue < 2:
        raise ValueError(f"pack_questions needs per_dialogue ≥ 2, got {per_dialogue}")
    by_medium: dict[tuple, list] = {}
    rest = []
    for r in records:
        key = None
        if len(r.messages) == 2 and r.messages[0].role == "user" and len(r.images) + len(r.audios) == 1:
            marker = IMAGE_MARKER if r.images else AUDIO_MARKER
            content = r.messages[0].content
            if content.startswith(marker + "\n") and content.count(IMAGE_MARKER) + content.count(AUDIO_MARKER) == 1:
                key = ("image", str(r.images[0])) if r.images else ("audio", str(r.audios[0]), r.segments[0])
        (by_medium.setdefault(key, []) if key else rest).append(r)
    rng = random.Random(seed)
    packed = []
    for group in by_medium.values():
        rng.shuffle(group)
        for start in range(0, len(group), per_dialogue):
            chunk = group[start:start + per_dialogue]
            messages = list(chunk[0].messages)
            for r in chunk[1:]:
                question = r.messages[0].content.split("\n", 1)[1]                 # without the marker
                messages += [Message("user", question), r.messages[1]]
            packed.append(chunk[0] if len(chunk) == 1 else
                          replace(chunk[0], id=f"{chunk[0].id}+{len(chunk) - 1}", messages=tuple(messages)))
    out = rest + packed
    rng.shuffle(out)
    return out, sum(len(g) for g in by_medium.values())


def collate_dialogues(items: list[DialogueExample]) -> list[DialogueExample]:
    """A batch is the list of examples itself: rows are fused one by one inside the loss."""
    return list(items)


# ---------------------------------------------------------------------------
# Fusion of a mixed batch
# ---------------------------------------------------------------------------
def fuse_batch(model: OmniModel, batch: Sequence[DialogueExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fuse each row's layout (its media encoded together with the batch's: :meth:`OmniModel.fuse_rows`),
    then right-pad: embeds (B, T, C), labels (B, T), lengths (B,)."""
    if not batch:
        raise ValueError("fuse_batch got an empty batch")
    device = model.thinker.tok_emb.weight.device
    fusions = model.fuse_rows([[(kind, x.to(device)) for kind, x in ex.parts] for ex in batch])
    rows = [f.embeds[0] for f in fusions]                                          # each (T_b, C)
    labels = [(f.labels(ex.prompt_tokens) if ex.learned is None else f.span_labels([ex.learned]))[0]
              for f, ex in zip(fusions, batch)]                                     # each (T_b,)
    lengths = torch.tensor([r.shape[0] for r in rows])
    B, T, C = len(rows), int(lengths.max()), rows[0].shape[1]
    embeds = rows[0].new_zeros(B, T, C)                                            # (B, T, C)
    padded = torch.full((B, T), IGNORE_INDEX, dtype=torch.long, device=device)     # (B, T)
    for b, (r, lab) in enumerate(zip(rows, labels)):
        embeds[b, :r.shape[0]] = r
        padded[b, :lab.shape[0]] = lab
    return embeds, padded, lengths


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of labels[:, 1:] given logits[:, :-1], -100 skipped; all -100 → AllMaskedError."""
    assert logits.shape[:2] == labels.shape, \
        f"logits (B, T, V) {tuple(logits.shape)} and labels (B, T) {tuple(labels.shape)} disagree"
    targets = labels[:, 1:]                                                        # (B, T-1)
    if not bool((targets != IGNORE_INDEX).any()):
        raise AllMaskedError(f"every label of this batch of {labels.shape[0]} rows is -100: no answer token "
                             f"to learn from (check the answer masking and the data)")
    return shifted_cross_entropy(logits, labels, reduction)


def answer_logits(model: OmniModel, embeds: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits only where an answer token is predicted: (N, V) and their targets (N,).

    The same numbers as ``model.thinker(embeds=embeds)`` at those positions, but
    the 5000-way head runs on the N answer positions instead of all B · T (a
    one-word answer is ~3 of ~60 positions, so this is most of the step saved).
    """
    h = model.thinker.hidden_states(embeds=embeds)                                 # (B, T, C)
    targets = labels[:, 1:]                                                        # (B, T-1)
    if not bool((targets != IGNORE_INDEX).any()):
        raise AllMaskedError(f"every label of this batch of {labels.shape[0]} rows is -100: no answer token "
                             f"to learn from (check the answer masking and the data)")
    keep = targets != IGNORE_INDEX
    logits = model.thinker.lm_head(h[:, :-1][keep])                               # (N, V)
    if model.thinker.cfg.check_finite:
        check_finite(logits, "ThinkerLM logits (answer positions)")
    return logits, targets[keep]


LOSS_WEIGHTINGS = ("token", "dialogue")


def sft_loss(model: OmniModel, batch: Sequence[DialogueExample], weighting: str = "token"):
    """The stage's loss_fn: cross-entropy over the batch's answer tokens, and the counts.

    ``weighting="token"`` averages over every answer token of the batch (a
    20-token caption weighs 20 one-word answers); ``"dialogue"`` averages each
    dialogue's answer tokens first, then the dialogues, so a one-word answer
    ("red") counts as much as a transcript.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    embeds, labels, _ = fuse_batch(model, batch)
    logits, targets = answer_logits(model, embeds, labels)                         # (N, V), (N,)
    if weighting == "token":
        loss = F.cross_entropy(logits.float(), targets)
    else:
        keep = labels[:, 1:] != IGNORE_INDEX                                       # (B, T-1)
        row = keep.nonzero()[:, 0]                                                 # (N,) row of each target
        per_row = keep.sum(dim=1).clamp(min=1)                                     # (B,)
        ce = F.cross_entropy(logits.float(), targets, reduction="none")            # (N,)
        loss = (ce / per_row[row]).sum() / int((per_row > 0).sum())
    return loss, {"tokens": int(targets.numel()), "samples": len(batch)}


@torch.no_grad()
def validation_loss(model: OmniModel, examples: Sequence[DialogueExample], batch_size: int) -> dict:
    """``val_loss``: nats per answer token over ``examples`` (the same quantity as the training loss)."""
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        embeds, labels, _ = fuse_batch(model, examples[start:start + batch_size])
        logits, targets = answer_logits(model, embeds, labels)
        total += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
        count += int(targets.numel())
    return {"val_loss": total / count}
