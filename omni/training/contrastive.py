"""The contrastive image–caption objective: batches, InfoNCE in both directions, retrieval top-1.

    CaptionRecord (png, caption) ──omni.images.load_image──▶ pixels (3, 224, 224)
                                 ──BPE (BOS … EOS), right-padded with PAD──▶ ids (L,)
    batch: pixels (B, 3, 224, 224), ids (B, L), caption_index (B,)
    ContrastiveModel(pixels, ids) ──▶ logits_per_image (B, B)
    loss = ½ · [CE(logits, targets) + CE(logitsᵀ, targets)]

**Repeated captions.** Some one-object scenes share a caption ("a small red
circle on the left"). Two such images in one batch are both right for either
caption, so the target of a row is spread evenly over every column with the same
caption (``caption_index``: one integer per distinct caption text) instead of
punishing the model for a tie it cannot break. With distinct captions this is
exactly CLIP's one-hot target.

**Retrieval.** :func:`retrieval_top1` ranks N captions for each of N images;
the pairs must have N *distinct* captions (:func:`distinct_captions`), so
"the right caption" is well defined.

**Hard negatives** (``hard_negatives = k > 0``, NegCLIP: Yuksekgonul et al.
2023). In a batch of 64 random scenes a caption can be told from the others
by its colours, sizes and positions alone, so plain InfoNCE never has to see
shapes: a linear probe on the cpu preset's ViT tokens reads the colour of the
left object at 99.5 % but its shape at 38.9 % (chance 16.7 %). Each image
therefore also brings k copies of its caption with one shape, colour or size
word swapped for another of its kind (:func:`swapped_captions`; shape first,
then colour, then size). They are extra columns of the image→caption logits
(B, B + B·k), never right for any image; caption→image stays (B, B).

    ids (B, L) ─┐
    neg (B·k, L')┴─TextTower─▶ txt (B + B·k, E);  logits_per_image = scale · img @ txtᵀ  (B, B + B·k)

**Captioning** (``caption_weight = w > 0``, with a model whose
``caption.n_layers > 0``: CoCa, Yu et al. 2022). The loss adds w × the
next-token cross-entropy of each caption written from the image's 1 + N
tokens (padding skipped), so every shape word of every column is a target;
:func:`caption_accuracy` is its teacher-forced token accuracy on validation.

    loss = InfoNCE + w · CE(CaptionDecoder(CLS + patches, ids[:, :-1]), ids[:, 1:])

**Scene attributes** (``attribute_weight = a > 0``, with a model whose
``attribute_slots`` is 3): the world's captions say, for each column, the
shape, colour and size of its object (:func:`omni.data.scenes.parse_caption`);
an :class:`~omni.models.attribute_head.AttributeHead` must read them linearly
from the ViT's tokens, "none" for an empty column. This uses what only a
synthetic world knows exactly; it is the direct form of what the captioner
learns from words, and it is what made shapes readable (docs/training.md).

    loss += a · mean over (shape, colour, size) of CE(head(CLS + patches)[column], label[column])
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from omni.data.language import SCENE_COLOURS, SCENE_SHAPES, SCENE_SIZES
from omni.data.manifest import CaptionRecord
from omni.data.scenes import COLUMNS, parse_caption
from omni.images import load_image
from omni.nn.cross_entropy import IGNORE_INDEX
from omni.tokenizer import PAD_ID, BPETokenizer


def encode_caption(tok: BPETokenizer, caption: str, ctx_len: int) -> list[int]:
    """``BOS pieces EOS``; a caption longer than ``ctx_len`` tokens is an error, never cut."""
    ids = tok.encode(caption, add_bos=True, add_eos=True)
    if len(ids) > ctx_len:
        raise ValueError(f"caption of {len(ids)} tokens is longer than the text tower's ctx_len {ctx_len}: "
                         f"{caption!r}; raise model.text.ctx_len")
    return ids


SWAP_GROUPS = (SCENE_SHAPES, SCENE_COLOURS, SCENE_SIZES)    # a hard negative swaps a word within its group
ATTRIBUTES = {"shape": SCENE_SHAPES, "colour": SCENE_COLOURS, "size": SCENE_SIZES}   # label order of the head
ATTRIBUTE_CLASSES = [len(v) + 1 for v in ATTRIBUTES.values()]   # + "none" (an empty column), last: [7, 9, 3]


def scene_attributes(caption: str) -> torch.Tensor:
    """A scene caption → labels (3 columns, 3 attributes): shape, colour, size indices; len(group) = none."""
    objects = parse_caption(caption)
    labels = torch.tensor([[len(group) for group in ATTRIBUTES.values()] for _ in COLUMNS])
    for c, column in enumerate(COLUMNS):
        if column in objects:
            size, colour, shape = objects[column]
            labels[c] = torch.tensor([SCENE_SHAPES.index(shape), SCENE_COLOURS.index(colour), SCENE_SIZES.index(size)])
    return labels


def swapped_captions(caption: str, k: int, rng: random.Random) -> list[str]:
    """``k`` false captions: ``caption`` with one shape / colour / size word swapped for another of its group.

    Negative j swaps a word of group j mod 3 (shapes, colours, sizes) when the
    caption has one; the word and its replacement are drawn with ``rng``.
    """
    words = caption.split()
    slots = [[i for i, w in enumerate(words) if w in group] for group in SWAP_GROUPS]
    present = [(g, idx) for g, idx in enumerate(slots) if idx]
    if not present:
        raise ValueError(f"caption {caption!r} has no shape, colour or size word to swap for a hard negative")
    out = []
    for j in range(k):
        g, idx = present[j % len(present)]
        i = rng.choice(idx)
        swapped = rng.choice([w for w in SWAP_GROUPS[g] if w != words[i]])
        out.append(" ".join(words[:i] + [swapped] + words[i + 1:]))
    return out


class CaptionImages:
    """Map-style dataset: item i → {"pixels": (3, S, S), "ids": (L_i,), "caption_index": ()}
    and, with ``hard_negatives = k > 0``, "neg_ids": k id tensors (fixed per item, drawn with ``seed``)."""

    def __init__(self, records: list[CaptionRecord], tok: BPETokenizer, ctx_len: int, image_size: int,
                 hard_negatives: int = 0, seed: int = 0, attributes: bool = False):
        if hard_negatives < 0:
            raise ValueError(f"hard_negatives must be ≥ 0, got {hard_negatives}")
        self.records, self.image_size = records, image_size
        self.ids = [torch.tensor(encode_caption(tok, r.caption, ctx_len)) for r in records]
        self.neg_ids = [[torch.tensor(encode_caption(tok, c, ctx_len))
                         for c in swapped_captions(r.caption, hard_negatives, random.Random(seed * 1_000_003 + i))]
                        for i, r in enumerate(records)] if hard_negatives else None
        self.attributes = [scene_attributes(r.caption) for r in records] if attributes else None
        index: dict[str, int] = {}
        self.caption_index = [index.setdefault(r.caption, len(index)) for r in records]
        self.n_distinct = len(index)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        item = {"pixels": load_image(self.records[i].image, size=self.image_size), "ids": self.ids[i],
                "caption_index": torch.tensor(self.caption_index[i])}
        if self.neg_ids is not None:
            item["neg_ids"] = self.neg_ids[i]
        if self.attributes is not None:
            item["attributes"] = self.attributes[i]
        return item


def _pad(seqs: list[torch.Tensor]) -> torch.Tensor:
    """Right-pad 1-D id tensors with PAD_ID to the longest: (N, L)."""
    out = torch.full((len(seqs), max(s.numel() for s in seqs)), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : s.numel()] = s
    return out


def collate_captions(items: list[dict]) -> dict:
    """Stack pixels; right-pad ids (B, L) — and hard negatives (B·k, L'), item-major — with PAD_ID."""
    batch = {"pixels": torch.stack([it["pixels"] for it in items]),                 # (B, 3, S, S)
             "ids": _pad([it["ids"] for it in items]),                               # (B, L)
             "caption_index": torch.stack([it["caption_index"] for it in items])}
    if "neg_ids" in items[0]:
        batch["neg_ids"] = _pad([n for it in items for n in it["neg_ids"]])          # (B·k, L')
    if "attributes" in items[0]:
        batch["attributes"] = torch.stack([it["attributes"] for it in items])        # (B, 3, 3)
    return batch


def info_nce(logits: torch.Tensor, caption_index: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over logits_per_image (B, B); equal captions share the target mass."""
    B = logits.shape[0]
    assert logits.shape == (B, B), f"info_nce expects square logits (B, B), got {tuple(logits.shape)}"
    if caption_index is None:
        caption_index = torch.arange(B, device=logits.device)
    same = (caption_index[:, None] == caption_index[None, :]).float()              # (B, B), symmetric
    targets = same / same.sum(dim=1, keepdim=True)                                  # rows sum to 1
    logits = logits.float()
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def info_nce_with_negatives(logits: torch.Tensor, caption_index: torch.Tensor) -> torch.Tensor:
    """InfoNCE over logits_per_image (B, B + N) whose last N columns are hard negatives, never right.

    Image→caption is a (B + N)-way choice; caption→image stays the (B, B) one.
    """
    B = logits.shape[0]
    assert logits.dim() == 2 and logits.shape[1] > B, f"expected (B, B + N) logits, got {tuple(logits.shape)}"
    same = (caption_index[:, None] == caption_index[None, :]).float()              # (B, B)
    targets = same / same.sum(dim=1, keepdim=True)
    wide = torch.cat([targets, targets.new_zeros(B, logits.shape[1] - B)], dim=1)  # (B, B + N)
    logits = logits.float()
    return 0.5 * (F.cross_entropy(logits, wide) + F.cross_entropy(logits[:, :B].T, targets))


def caption_targets(ids: torch.Tensor) -> torch.Tensor:
    """ids (B, L) right-padded with PAD_ID → next-token targets (B, L - 1), padding → IGNORE_INDEX."""
    targets = ids[:, 1:].clone()
    targets[targets == PAD_ID] = IGNORE_INDEX
    return targets


def caption_loss(caption_logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the captions' real tokens (after BOS, EOS included)."""
    return F.cross_entropy(caption_logits.float().flatten(0, 1), caption_targets(ids).flatten(),
                           ignore_index=IGNORE_INDEX)


def attribute_loss(model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over attributes of the cross-entropy over every column (an empty one's label is "none")."""
    parts = model.attribute_head.split(logits.float())                             # each (B, 3, classes_k)
    return sum(F.cross_entropy(p.flatten(0, 1), labels[..., k].flatten()) for k, p in enumerate(parts)) / len(parts)


def contrastive_loss(model, batch: dict, caption_weight: float = 0.0, attribute_weight: float = 0.0):
    """InfoNCE of a collated batch (with its hard negatives, if it has them) [+ caption_weight × the
    captioning loss], and the pair count."""
    out = model(batch["pixels"], batch["ids"], batch.get("neg_ids"))              # logits (B, B [+ B·k])
    if "neg_ids" in batch:
        loss = info_nce_with_negatives(out.logits, batch["caption_index"])
    else:
        loss = info_nce(out.logits, batch["caption_index"])
    info = {"samples": out.logits.shape[0]}
    if caption_weight:
        if out.caption_logits is None:
            raise ValueError(f"caption_weight is {caption_weight} but the model has no caption decoder "
                             f"(set model.caption.n_layers ≥ 1)")
        cap = caption_loss(out.caption_logits, batch["ids"])
        loss = loss + caption_weight * cap
        info["caption_loss"] = float(cap.detach())
    if attribute_weight:
        if out.attribute_logits is None:
            raise ValueError(f"attribute_weight is {attribute_weight} but the model has no attribute head "
                             f"(set model.attribute_slots and model.attribute_classes)")
        att = attribute_loss(getattr(model, "module", model), out.attribute_logits, batch["attributes"])
        loss = loss + attribute_weight * att
        info["attribute_loss"] = float(att.detach())
    return loss, info


@torch.no_grad()
def attribute_accuracy(model, pairs: CaptionImages, batch_size: int) -> dict[str, float]:
    """Accuracy of the attribute head per attribute, over the columns that hold an object."""
    device = next(model.parameters()).device
    right, total = [0] * len(ATTRIBUTES), [0] * len(ATTRIBUTES)
    for start in range(0, len(pairs), batch_size):
        batch = collate_captions([pairs[i] for i in range(start, min(start + batch_size, len(pairs)))])
        out = model(batch["pixels"].to(device), batch["ids"].to(device))
        labels = batch["attributes"].to(device)                                    # (B, 3, 3)
        present = labels[..., 0] != len(SCENE_SHAPES)                              # (B, 3)
        for k, part in enumerate(model.attribute_head.split(out.attribute_logits)):
            right[k] += int(((part.argmax(-1) == labels[..., k]) & present).sum())
            total[k] += int(present.sum())
    return {name: right[k] / total[k] for k, name in enumerate(ATTRIBUTES)}


def first_piece_ids(tok: BPETokenizer, words) -> set[int]:
    """The id of each word's first BPE piece (how the caption decoder's targets name the word)."""
    return {tok.encode(w, add_bos=False)[0] for w in words}


@torch.no_grad()
def caption_accuracy(model, pairs: CaptionImages, batch_size: int,
                     word_groups: dict[str, set[int]] | None = None) -> dict[str, float]:
    """Teacher-forced next-token accuracy of the caption decoder over the captions' real tokens
    ("all"), and over the targets that start a word of each of ``word_groups`` (e.g. the shapes)."""
    device = next(model.parameters()).device
    groups = {"all": None, **(word_groups or {})}
    right, total = dict.fromkeys(groups, 0), dict.fromkeys(groups, 0)
    for start in range(0, len(pairs), batch_size):
        batch = collate_captions([pairs[i] for i in range(start, min(start + batch_size, len(pairs)))])
        out = model(batch["pixels"].to(device), batch["ids"].to(device))
        targets = caption_targets(batch["ids"].to(device))
        hit = out.caption_logits.argmax(-1) == targets
        for name, ids in groups.items():
            mask = targets != IGNORE_INDEX
            if ids is not None:
                mask &= torch.isin(targets, torch.tensor(sorted(ids), device=device))
            right[name] += int((hit & mask).sum())
            total[name] += int(mask.sum())
    return {name: right[name] / total[name] for name in groups if total[name]}


def distinct_captions(records: list[CaptionRecord], n: int) -> list[CaptionRecord]:
    """The first ``n`` records (in manifest order) whose captions have not been seen before."""
    seen, out = set(), []
    for r in records:
        if r.caption not in seen:
            seen.add(r.caption)
            out.append(r)
            if len(out) == n:
                break
    return out


@torch.no_grad()
def retrieval_top1(model, pairs: CaptionImages, batch_size: int) -> dict:
    """Image→caption and caption→image top-1 among the ``len(pairs)`` distinct captions, and the InfoNCE."""
    if pairs.n_distinct != len(pairs):
        raise ValueError(f"retrieval needs distinct captions; got {pairs.n_distinct} for {len(pairs)} images "
                         f"(select them with distinct_captions)")
    device = next(model.parameters()).device
    imgs, txts = [], []
    for start in range(0, len(pairs), batch_size):
        batch = collate_captions([pairs[i] for i in range(start, min(start + batch_size, len(pairs)))])
        imgs.append(model.image_embed(batch["pixels"].to(device)))
        txts.append(model.text_embed(batch["ids"].to(device)))
    img, txt = torch.cat(imgs), torch.cat(txts)                                     # (N, E) each
    logits = model.scale() * img @ txt.T                                            # (N, N)
    right = torch.arange(len(pairs), device=device)
    return {"val_loss": float(info_nce(logits)),
            "i2t_top1": float((logits.argmax(dim=1) == right).float().mean()),
            "t2i_top1": float((logits.argmax(dim=0) == right).float().mean())}
