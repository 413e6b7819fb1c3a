"""Vision evaluation: image→caption retrieval top-1 among 100 held-out images with distinct captions.

    omni eval vision --ckpt checkpoints/vision/export --data data/medium --split test

The exported ContrastiveModel embeds ``n`` (default 100) images of
``caption_<split>.jsonl`` and their captions; each image ranks all ``n``
captions by cosine similarity, and it scores when its own caption comes first.
Some one-object scenes share a caption ("a small red circle on the left"), and
then "its own caption" would be ambiguous, so the ``n`` images are the first
ones in manifest order whose captions have not been taken yet
(:func:`omni.training.contrastive.distinct_captions`). Chance is 1 / n.

Goal (issue 6, cpu preset): image→caption top-1 ≥ 90 %. Caption→image top-1
is reported beside it, without a goal.
"""

from __future__ import annotations

from pathlib import Path

import torch

from omni.data.quality import load_checked
from omni.evaluation.metric import Metric
from omni.exports import load_stage
from omni.training.contrastive import CaptionImages, distinct_captions, retrieval_top1
from omni.training.stage import world_file

GOAL_TOP1 = 0.90


@torch.no_grad()
def evaluate(ckpt: Path, data: Path, split: str = "test", device: str = "cpu", n: int = 100,
             batch_size: int = 50, bad_data_threshold: float = 0.01) -> list[Metric]:
    """Retrieval top-1 of the exported ContrastiveModel among ``n`` distinct-caption images of ``split``."""
    ckpt, data = Path(ckpt), Path(data)
    loaded = load_stage("vision", ckpt, device)           # the same checks inference makes, tokenizer included
    model = loaded.model
    records, report = load_checked(world_file(data, f"caption_{split}.jsonl"), "caption", threshold=bad_data_threshold)
    chosen = distinct_captions(records, n)
    if len(chosen) < 2:
        raise ValueError(f"{data}/caption_{split}.jsonl has {len(chosen)} distinct caption(s); retrieval needs ≥ 2")
    pairs = CaptionImages(chosen, loaded.tokenizer, model.cfg.text.ctx_len, model.cfg.vision.image_size)
    scores = retrieval_top1(model, pairs, batch_size)
    k = len(chosen)
    return [
        Metric(f"image→caption top-1 among {k} ({split})", 100 * scores["i2t_top1"], "%",
               f"≥ {100 * GOAL_TOP1:g} %", scores["i2t_top1"] >= GOAL_TOP1),
        Metric(f"caption→image top-1 among {k} ({split})", 100 * scores["t2i_top1"], "%"),
        Metric("chance", 100 / k, "%"),
        Metric("temperature τ (learnt)", float(1 / model.scale()), ""),
        Metric("bad images skipped (by omni.data.quality)", float(len(report.bad)), "images"),
    ]
