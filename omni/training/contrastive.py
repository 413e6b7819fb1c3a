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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from omni.data.manifest import CaptionRecord
from omni.images import load_image
from omni.tokenizer import PAD_ID, BPETokenizer


def encode_caption(tok: BPETokenizer, caption: str, ctx_len: int) -> list[int]:
    """``BOS pieces EOS``; a caption longer than ``ctx_len`` tokens is an error, never cut."""
    ids = tok.encode(caption, add_bos=True, add_eos=True)
    if len(ids) > ctx_len:
        raise ValueError(f"caption of {len(ids)} tokens is longer than the text tower's ctx_len {ctx_len}: "
                         f"{caption!r}; raise model.text.ctx_len")
    return ids


class CaptionImages:
    """Map-style dataset: item i → {"pixels": (3, S, S), "ids": (L_i,), "caption_index": ()}."""

    def __init__(self, records: list[CaptionRecord], tok: BPETokenizer, ctx_len: int, image_size: int):
        self.records, self.image_size = records, image_size
        self.ids = [torch.tensor(encode_caption(tok, r.caption, ctx_len)) for r in records]
        index: dict[str, int] = {}
        self.caption_index = [index.setdefault(r.caption, len(index)) for r in records]
        self.n_distinct = len(index)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return {"pixels": load_image(self.records[i].image, size=self.image_size), "ids": self.ids[i],
                "caption_index": torch.tensor(self.caption_index[i])}


def collate_captions(items: list[dict]) -> dict:
    """Stack pixels; right-pad ids with PAD_ID to the longest caption of the batch."""
    L = max(it["ids"].numel() for it in items)
    ids = torch.full((len(items), L), PAD_ID, dtype=torch.long)                     # (B, L)
    for i, it in enumerate(items):
        ids[i, : it["ids"].numel()] = it["ids"]
    return {"pixels": torch.stack([it["pixels"] for it in items]),                  # (B, 3, S, S)
            "ids": ids, "caption_index": torch.stack([it["caption_index"] for it in items])}


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


def contrastive_loss(model, batch: dict):
    """Mean InfoNCE of a collated batch, and the pair count."""
    logits = model(batch["pixels"], batch["ids"])                                   # (B, B)
    return info_nce(logits, batch["caption_index"]), {"samples": logits.shape[0]}


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
